//! Rendering results. A [`Report`] is a list of sections, each a table or a key/value
//! list, rendered either as Pegasus-shaped text (a `[section]` line, then borderless
//! aligned columns, so `awk '{print $3}'` keeps working) or as typed JSON (numbers are
//! numbers; each table an array of row objects keyed by column name; each key/value list
//! an object). Colour is applied only when asked for (a terminal, no `NO_COLOR`).

use comfy_table::{CellAlignment, Table, presets};
use nu_ansi_term::Color;
use serde_json::{Map, Value};

/// How a cell is coloured on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// No colour.
    Plain,
    /// Green: ALIVE, healthy.
    Good,
    /// Red: UNALIVE, unhealthy.
    Bad,
}

/// One value: its text form and its JSON form.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    text: String,
    json: Value,
    tone: Tone,
}

impl Cell {
    /// A string.
    pub fn str(s: impl Into<String>) -> Cell {
        let s = s.into();
        Cell {
            json: Value::String(s.clone()),
            text: s,
            tone: Tone::Plain,
        }
    }

    /// A number.
    pub fn num(n: impl Into<i64>) -> Cell {
        let n = n.into();
        Cell {
            text: n.to_string(),
            json: Value::from(n),
            tone: Tone::Plain,
        }
    }

    /// A boolean.
    pub fn bool(b: bool) -> Cell {
        Cell {
            text: b.to_string(),
            json: Value::Bool(b),
            tone: Tone::Plain,
        }
    }

    /// An optional string: `-` in text, `null` in JSON when absent.
    pub fn opt(s: Option<impl Into<String>>) -> Cell {
        match s {
            Some(s) => Cell::str(s),
            None => Cell {
                text: "-".into(),
                json: Value::Null,
                tone: Tone::Plain,
            },
        }
    }

    /// A value a stale answer does not know (liveness, health): `unknown` in text,
    /// `null` in JSON.
    pub fn unknown() -> Cell {
        Cell {
            text: "unknown".into(),
            json: Value::Null,
            tone: Tone::Plain,
        }
    }

    /// A list: `[a,b]` in text, an array in JSON.
    pub fn list<S: AsRef<str>>(items: &[S]) -> Cell {
        let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
        Cell {
            text: format!("[{}]", items.join(",")),
            json: Value::from(items),
            tone: Tone::Plain,
        }
    }

    /// Any text with any JSON.
    pub fn custom(text: impl Into<String>, json: Value) -> Cell {
        Cell {
            text: text.into(),
            json,
            tone: Tone::Plain,
        }
    }

    /// Sets the tone.
    pub fn tone(mut self, tone: Tone) -> Cell {
        self.tone = tone;
        self
    }

    /// Red if `bad`, else plain.
    pub fn bad_if(self, bad: bool) -> Cell {
        if bad { self.tone(Tone::Bad) } else { self }
    }

    fn render(&self, color: bool) -> String {
        match (color, self.tone) {
            (true, Tone::Good) => Color::Green.paint(&self.text).to_string(),
            (true, Tone::Bad) => Color::Red.paint(&self.text).to_string(),
            _ => self.text.clone(),
        }
    }
}

pub use crate::timeutil::format_size;

/// A disk-usage cell: readable text, bytes in JSON.
pub fn size_cell(bytes: u64) -> Cell {
    Cell::custom(format_size(bytes), serde_json::json!(bytes))
}

/// Disk that replicas take, as their nodes reported it; `holds_replicas` says whether
/// any are placed there. A replica on disk is never 0 bytes (its store file and
/// preallocated log), so placed replicas summing to 0 have not been reported in a
/// beacon yet: "unknown" (`null` in JSON), not `0B`.
pub fn disk_cell(bytes: u64, holds_replicas: bool) -> Cell {
    if bytes == 0 && holds_replicas {
        Cell::unknown()
    } else {
        size_cell(bytes)
    }
}

/// A column: its name and whether its values are right-aligned (counts are).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The header, which is also the JSON key.
    pub name: &'static str,
    /// Right-align (numbers).
    pub right: bool,
}

/// A left-aligned column.
pub const fn col(name: &'static str) -> Column {
    Column { name, right: false }
}

/// A right-aligned (numeric) column.
pub const fn num(name: &'static str) -> Column {
    Column { name, right: true }
}

/// One section of a report.
#[derive(Debug, Clone)]
pub enum Section {
    /// A table of rows.
    Table {
        /// The `[name]` and JSON key.
        name: &'static str,
        /// The columns.
        columns: Vec<Column>,
        /// The rows; each as long as `columns`.
        rows: Vec<Vec<Cell>>,
    },
    /// A key/value list, printed `key : value`.
    KeyValue {
        /// The `[name]` and JSON key.
        name: &'static str,
        /// The pairs, in order.
        pairs: Vec<(String, Cell)>,
    },
}

/// A command's structured result.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The sections, in order.
    pub sections: Vec<Section>,
}

impl Report {
    /// Adds a table section.
    pub fn table(
        mut self,
        name: &'static str,
        columns: Vec<Column>,
        rows: Vec<Vec<Cell>>,
    ) -> Report {
        debug_assert!(
            rows.iter().all(|r| r.len() == columns.len()),
            "ragged table {name}"
        );
        self.sections.push(Section::Table {
            name,
            columns,
            rows,
        });
        self
    }

    /// Adds a key/value section.
    pub fn pairs(mut self, name: &'static str, pairs: Vec<(&str, Cell)>) -> Report {
        let pairs = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        self.sections.push(Section::KeyValue { name, pairs });
        self
    }

    /// The text form: sections separated by a blank line.
    pub fn to_text(&self, color: bool) -> String {
        let mut out = String::new();
        for (i, section) in self.sections.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            match section {
                Section::Table {
                    name,
                    columns,
                    rows,
                } => {
                    out.push_str(&format!("[{name}]\n"));
                    out.push_str(&render_table(columns, rows, color));
                }
                Section::KeyValue { name, pairs } => {
                    out.push_str(&format!("[{name}]\n"));
                    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                    for (k, v) in pairs {
                        out.push_str(&format!("{k:<width$}  : {}\n", v.render(color)));
                    }
                }
            }
        }
        out
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        for section in &self.sections {
            match section {
                Section::Table {
                    name,
                    columns,
                    rows,
                } => {
                    let rows = rows
                        .iter()
                        .map(|row| {
                            let obj: Map<String, Value> = columns
                                .iter()
                                .zip(row)
                                .map(|(c, cell)| (c.name.to_string(), cell.json.clone()))
                                .collect();
                            Value::Object(obj)
                        })
                        .collect();
                    root.insert(name.to_string(), Value::Array(rows));
                }
                Section::KeyValue { name, pairs } => {
                    let obj = pairs
                        .iter()
                        .map(|(k, v)| (k.clone(), v.json.clone()))
                        .collect();
                    root.insert(name.to_string(), Value::Object(obj));
                }
            }
        }
        Value::Object(root)
    }
}

fn render_table(columns: &[Column], rows: &[Vec<Cell>], color: bool) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table.set_header(columns.iter().map(|c| comfy_table::Cell::new(c.name)));
    for row in rows {
        table.add_row(
            row.iter()
                .map(|cell| comfy_table::Cell::new(cell.render(color))),
        );
    }
    for (i, column) in columns.iter().enumerate() {
        if let Some(c) = table.column_mut(i) {
            c.set_padding((0, 2));
            if column.right {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(1023), "1023B");
        assert_eq!(format_size(1536), "1.5KB");
        assert_eq!(format_size(5 << 20), "5.0MB");
        assert_eq!(format_size(3 << 30), "3.0GB");
    }

    fn sample() -> Report {
        Report::default()
            .table(
                "details",
                vec![col("address"), col("status"), num("replica_count")],
                vec![
                    vec![
                        Cell::str("127.0.0.1:34801"),
                        Cell::str("ALIVE").tone(Tone::Good),
                        Cell::num(24),
                    ],
                    vec![
                        Cell::str("127.0.0.1:34802"),
                        Cell::str("UNALIVE").tone(Tone::Bad),
                        Cell::num(0),
                    ],
                ],
            )
            .pairs(
                "summary",
                vec![
                    ("total_node_count", Cell::num(2)),
                    ("alive_node_count", Cell::num(1)),
                ],
            )
    }

    #[test]
    fn text_is_pegasus_shaped_and_awk_friendly() {
        let text = sample().to_text(false);
        let expected = "\
[details]
address          status   replica_count
127.0.0.1:34801  ALIVE               24
127.0.0.1:34802  UNALIVE              0

[summary]
total_node_count  : 2
alive_node_count  : 1
";
        assert_eq!(text, expected);
        let third: Vec<&str> = text
            .lines()
            .skip(2)
            .take(2)
            .map(|l| l.split_whitespace().nth(2).unwrap())
            .collect();
        assert_eq!(third, ["24", "0"]);
    }

    #[test]
    fn json_is_typed() {
        let json = sample().to_json();
        assert_eq!(json["details"][0]["replica_count"], 24);
        assert_eq!(json["details"][1]["status"], "UNALIVE");
        assert_eq!(json["summary"]["alive_node_count"], 1);
        let cell = Cell::list(&["a", "b"]);
        assert_eq!(
            (cell.text.as_str(), cell.json.clone()),
            ("[a,b]", serde_json::json!(["a", "b"]))
        );
        assert_eq!(Cell::opt(None::<String>).json, Value::Null);
    }

    #[test]
    fn colour_only_when_asked() {
        assert!(!sample().to_text(false).contains('\x1b'));
        let coloured = sample().to_text(true);
        assert!(coloured.contains("\x1b[32mALIVE"), "{coloured:?}");
        // Colour codes do not break the alignment of what follows.
        let plain_widths: Vec<usize> = sample().to_text(false).lines().map(str::len).collect();
        let stripped: Vec<usize> = coloured
            .lines()
            .map(|l| {
                l.replace("\x1b[32m", "")
                    .replace("\x1b[31m", "")
                    .replace("\x1b[0m", "")
                    .len()
            })
            .collect();
        assert_eq!(plain_widths, stripped);
    }
}
