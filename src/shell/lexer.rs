//! Splits a line the way a POSIX shell would: whitespace separates words; single quotes
//! keep everything literally; double quotes keep spaces and honour `\"`, `\'`, `\\`,
//! `\n`, `\t`, `\r`, `\0` and `\xHH` (Pegasus's escapes, so binary values can be typed);
//! outside quotes a backslash keeps a space, `;`, `#` or a quote literal and knows the same
//! escapes; any other escape is an error naming it (never silently dropped); an unquoted
//! `;` ends a statement; an unquoted `#` at the start of a word starts a comment.

/// A line that cannot be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError(pub String);

/// Splits `line` into statements, each a list of words. Empty statements are dropped.
pub fn split_statements(line: &str) -> Result<Vec<Vec<String>>, LexError> {
    let mut statements = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err(LexError("unbalanced quote: missing closing '".into())),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => word.push(escape(&mut chars)?),
                        Some(ch) => word.push(ch),
                        None => {
                            return Err(LexError("unbalanced quote: missing closing \"".into()));
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.peek() {
                    Some(' ' | ';' | '#' | '\'' | '"' | '\\') => {
                        word.push(chars.next().expect("peeked"));
                    }
                    Some(_) => word.push(escape(&mut chars)?),
                    None => return Err(LexError("a trailing backslash escapes nothing".into())),
                }
            }
            '#' if !in_word => break,
            ';' => {
                finish_word(&mut words, &mut word, &mut in_word);
                if !words.is_empty() {
                    statements.push(std::mem::take(&mut words));
                }
            }
            c if c.is_whitespace() => finish_word(&mut words, &mut word, &mut in_word),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    finish_word(&mut words, &mut word, &mut in_word);
    if !words.is_empty() {
        statements.push(words);
    }
    Ok(statements)
}

fn finish_word(words: &mut Vec<String>, word: &mut String, in_word: &mut bool) {
    if *in_word {
        words.push(std::mem::take(word));
        *in_word = false;
    }
}

fn escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, LexError> {
    Ok(match chars.next() {
        Some('n') => '\n',
        Some('t') => '\t',
        Some('r') => '\r',
        Some('0') => '\0',
        Some('x') => {
            let hex: String = (0..2).filter_map(|_| chars.next()).collect();
            let code = u8::from_str_radix(&hex, 16)
                .map_err(|_| LexError(format!("bad escape \\x{hex}: expected two hex digits")))?;
            crate::shell::bytes::raw_char(code)
        }
        Some(c @ ('"' | '\'' | '\\')) => c,
        Some(other) => {
            return Err(LexError(format!(
                "unknown escape \\{other}: the shell knows \\\\ \\\" \\' \\n \\t \\r \\0 and \\xHH"
            )));
        }
        None => return Err(LexError("unbalanced quote: missing closing \"".into())),
    })
}

/// Where the word under the cursor starts in `line` (for completion): the byte offset
/// after the last unquoted whitespace before `pos`.
pub fn word_start(line: &str, pos: usize) -> usize {
    let mut start = 0;
    let mut quote: Option<char> = None;
    for (i, c) in line[..pos].char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() || c == ';' => start = i + c.len_utf8(),
            _ => {}
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Vec<String> {
        let mut s = split_statements(line).unwrap();
        assert_eq!(s.len(), 1, "{line}");
        s.remove(0)
    }

    #[test]
    fn splits_words_quotes_and_escapes() {
        assert_eq!(one("nodes  -d"), ["nodes", "-d"]);
        assert_eq!(one(r#"set k "a b" 'c d'"#), ["set", "k", "a b", "c d"]);
        assert_eq!(one(r#"set k "x\"y\\z\n""#), ["set", "k", "x\"y\\z\n"]);
        assert_eq!(one(r#"set k "\x41\x00""#), ["set", "k", "A\0"]);
        assert_eq!(one(r"set k a\ b"), ["set", "k", "a b"]);
        assert_eq!(one("create ''"), ["create", ""]);
        assert_eq!(one("a'b'c"), ["abc"]);
        // Outside quotes the same escapes hold; quotes, spaces, `;` and `#` are kept.
        assert_eq!(one(r"set k \x41\;\#"), ["set", "k", "A;#"]);
    }

    #[test]
    fn an_unknown_escape_is_an_error_naming_it() {
        for line in [r#"set k "\q""#, r#"set k "\u00e9""#, r"set k \q"] {
            let err = split_statements(line).unwrap_err();
            assert!(err.0.contains("unknown escape"), "{line}: {err:?}");
        }
        assert!(
            split_statements(r#"set k "\u00e9""#)
                .unwrap_err()
                .0
                .contains("\\u")
        );
    }

    #[test]
    fn statements_and_comments() {
        let s = split_statements("nodes -d; ls -d ;; app t").unwrap();
        assert_eq!(
            s,
            vec![vec!["nodes", "-d"], vec!["ls", "-d"], vec!["app", "t"]]
        );
        assert_eq!(
            split_statements("# a comment").unwrap(),
            Vec::<Vec<String>>::new()
        );
        assert_eq!(one("ls # trailing"), ["ls"]);
        assert_eq!(one("set k a#b"), ["set", "k", "a#b"]);
        assert_eq!(one("set k 'a;b'"), ["set", "k", "a;b"]);
        assert!(split_statements("   ").unwrap().is_empty());
    }

    #[test]
    fn refuses_unbalanced_input() {
        assert!(
            split_statements("set k 'abc")
                .unwrap_err()
                .0
                .contains("unbalanced")
        );
        assert!(
            split_statements("set k \"abc")
                .unwrap_err()
                .0
                .contains("unbalanced")
        );
        assert!(split_statements("set k abc\\").is_err());
        assert!(
            split_statements(r#"set k "\xZZ""#)
                .unwrap_err()
                .0
                .contains("hex")
        );
    }

    #[test]
    fn finds_the_word_under_the_cursor() {
        assert_eq!(word_start("nodes -", 7), 6);
        assert_eq!(word_start("nod", 3), 0);
        assert_eq!(word_start("set k 'a b", 10), 6);
        assert_eq!(word_start("ls; app ", 8), 8);
    }
}
