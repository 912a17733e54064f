//! Binary-safe keys and values in the shell. Typed: `"\xHH"` in double quotes is one
//! byte (the lexer carries bytes 0x80..=0xFF as private-use characters so they stay
//! distinct from typed Unicode, and [`arg_bytes`] turns them back); everything else is
//! its UTF-8. Printed: [`escape`] quotes a value and escapes `"`, `\`, control
//! characters and bytes that are not UTF-8 as `\xHH`, so output can be pasted back.

/// Where the lexer puts raw bytes 0x80..=0xFF: U+10FF80..=U+10FFFF (private use).
const RAW_BASE: u32 = 0x10_FF00;

/// The character the lexer uses for byte `b` typed as `\xHH`.
pub fn raw_char(b: u8) -> char {
    if b < 0x80 {
        char::from(b)
    } else {
        char::from_u32(RAW_BASE + u32::from(b)).expect("a private-use character")
    }
}

/// The bytes an argument stands for.
pub fn arg_bytes(arg: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(arg.len());
    for c in arg.chars() {
        let code = c as u32;
        if (RAW_BASE + 0x80..=RAW_BASE + 0xFF).contains(&code) {
            out.push((code - RAW_BASE) as u8);
        } else {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

/// `bytes` in double quotes with escapes (Pegasus prints values this way).
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let mut buf = [0; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02X}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out.push('"');
    out
}

/// `bytes` as a JSON string: itself when it is UTF-8, otherwise escaped as [`escape`]
/// does (without the quotes).
pub fn json_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let quoted = escape(bytes);
            quoted[1..quoted.len() - 1].to_string()
        }
    }
}

/// One record as the scan verbs print it: `"HK" : "SK" => "VALUE"`.
pub fn record_line(r: &crate::pb::Record) -> String {
    format!(
        "{} : {} => {}",
        escape(&r.hash_key),
        escape(&r.sort_key),
        escape(&r.value)
    )
}

/// Prints records, one per line, then how many (Pegasus's closing line).
pub fn print_records(
    ctx: &mut crate::shell::context::Context,
    records: &[crate::pb::Record],
) -> Result<(), crate::shell::error::ShellError> {
    for r in records {
        ctx.println(record_line(r))?;
    }
    ctx.println(format!("\n{} key-value pairs got.", records.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::lexer::split_statements;

    #[test]
    fn typed_escapes_are_bytes_and_printing_round_trips() {
        let words = &split_statements(r#"set k "a\xff\x00\"\n€""#).unwrap()[0];
        let value = arg_bytes(&words[2]);
        assert_eq!(value, b"a\xff\x00\"\n\xe2\x82\xac");
        let printed = escape(&value);
        assert_eq!(printed, r#""a\xFF\x00\"\n€""#);
        let again = &split_statements(&format!("x {printed}")).unwrap()[0];
        assert_eq!(arg_bytes(&again[1]), value, "output pastes back as input");
        assert_eq!(arg_bytes("ÿ"), "ÿ".as_bytes(), "typed Unicode stays UTF-8");
    }
}
