//! `docs/benchmarks.md`: one `## ` section per benchmark command, each rewritten whole by its command.

use anyhow::{Context, Result};
use std::path::Path;

const PREAMBLE: &str = "# Benchmarks\n\n\
Performance goals are checked by commands that measure and report, never by timed unit tests. Each section below is \
written by the command it names, with the machine and the date of the run; rerun the command to update it.\n";

/// Replaces the section whose heading is `## {title}` (up to the next `## ` heading) with `body`, or appends it;
/// creates the file if needed.
pub fn update_section(path: &Path, title: &str, body: &str) -> Result<()> {
    let current = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PREAMBLE.to_string(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let updated = replace_section(&current, title, body);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

fn replace_section(text: &str, title: &str, body: &str) -> String {
    let heading = format!("## {title}");
    let section = format!("{heading}\n\n{}\n", body.trim_end());
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == heading) else {
        return format!("{}\n\n{section}", text.trim_end());
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## "))
        .map_or(lines.len(), |i| start + 1 + i);
    let mut out = lines[..start].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&section);
    if end < lines.len() {
        out.push('\n');
        out.push_str(&lines[end..].join("\n"));
        out.push('\n');
    }
    out
}

/// Prints a benchmark's rows as an aligned two-column table on stdout.
pub fn print_rows<K: AsRef<str>, V: std::fmt::Display>(rows: &[(K, V)]) {
    println!();
    let width = rows
        .iter()
        .map(|(k, _)| k.as_ref().len())
        .max()
        .unwrap_or(0);
    for (key, value) in rows {
        println!("{:<width$}  {value}", key.as_ref());
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_then_replaces_only_its_section() {
        let text = "# Benchmarks\n\nIntro.\n\n## Other\n\nkeep me\n";
        let once = replace_section(text, "Mine", "first\n");
        assert_eq!(
            once,
            "# Benchmarks\n\nIntro.\n\n## Other\n\nkeep me\n\n## Mine\n\nfirst\n"
        );
        let twice = replace_section(&once, "Mine", "second");
        assert_eq!(twice, once.replace("first", "second"));

        let before_other = "# B\n\n## Mine\n\nold\nold\n\n## Other\n\nkeep me\n";
        assert_eq!(
            replace_section(before_other, "Mine", "new"),
            "# B\n\n## Mine\n\nnew\n\n## Other\n\nkeep me\n"
        );
    }
}
