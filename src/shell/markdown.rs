//! Help pages (`commands/*.md`) rendered for a terminal: headings in bold without their
//! `#`, fenced code indented and coloured without its fences, `inline code` and
//! `**bold**` styled without their marks, list items with a bullet. The pages use only
//! this much Markdown (a test checks it), so a small renderer does, instead of a crate
//! that would pull a terminal toolkit into the shell. Piped, pages are printed as they
//! are written.

use nu_ansi_term::{Color, Style};

/// `page` for a terminal; with `color` false, the same layout without escapes.
pub fn render(page: &str, color: bool) -> String {
    let paint = |style: Style, text: &str| {
        if color {
            style.paint(text).to_string()
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    let mut in_code = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            out.push_str("    ");
            out.push_str(&paint(Color::Cyan.normal(), line));
        } else if let Some(title) = line.strip_prefix("# ") {
            out.push_str(&paint(Style::new().bold().underline(), title));
        } else if let Some(heading) = line.strip_prefix("## ") {
            out.push_str(&paint(Style::new().bold(), &heading.to_uppercase()));
        } else if let Some(item) = line.strip_prefix("- ") {
            out.push_str("  • ");
            out.push_str(&inline(item, color));
        } else if line.starts_with("  ") && !line.trim().is_empty() {
            // A list item's continuation lines line up after the bullet.
            out.push_str("  ");
            out.push_str(&inline(line, color));
        } else {
            out.push_str(&inline(line, color));
        }
        out.push('\n');
    }
    out
}

/// One line's `code` and `**bold**` spans, styled, their marks removed.
fn inline(line: &str, color: bool) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find(['`', '*']) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let (mark, style) = if from.starts_with("**") {
            ("**", Style::new().bold())
        } else if from.starts_with('`') {
            ("`", Color::Cyan.normal())
        } else {
            out.push('*');
            rest = &from[1..];
            continue;
        };
        let body = &from[mark.len()..];
        match body.find(mark) {
            Some(end) => {
                let text = &body[..end];
                if color {
                    out.push_str(&style.paint(text).to_string());
                } else {
                    out.push_str(text);
                }
                rest = &body[end + mark.len()..];
            }
            None => {
                out.push_str(from);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::commands::VERBS;

    #[test]
    fn marks_are_removed_and_styled() {
        let page = "# nodes\n\nLists `nodes -d` and **all** of 2*3.\n\n## Synopsis\n\n```\nnodes [-d]\n```\n\n- `-d`: more\n  columns\n";
        let plain = render(page, false);
        assert_eq!(
            plain,
            "nodes\n\nLists nodes -d and all of 2*3.\n\nSYNOPSIS\n\n    nodes [-d]\n\n  • -d: more\n    columns\n"
        );
        let coloured = render(page, true);
        assert!(coloured.contains("\x1b[1mall\x1b[0m"), "{coloured:?}");
        assert!(coloured.contains("\x1b[36mnodes -d\x1b[0m"), "{coloured:?}");
    }

    #[test]
    fn every_help_page_renders_without_markdown_left() {
        for verb in VERBS {
            let text = render(verb.page(), false);
            assert!(!text.contains("```"), "{}: a fence is left", verb.name());
            assert!(
                !text.lines().any(|l| l.starts_with('#')),
                "{}: a heading mark is left",
                verb.name()
            );
            assert!(!text.contains("**"), "{}: a bold mark is left", verb.name());
        }
    }
}
