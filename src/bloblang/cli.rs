//! `sluice blobl [-f FILE] [MAPPING]`: runs a mapping over stdin, one message per line.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use bumpalo::Bump;

use super::Mapping;
use crate::message::Message;

/// Reads stdin line by line and prints each result on its own line (strings raw, other
/// values compact JSON, an empty line for a deleted message); a runtime error goes to
/// stderr and the line is skipped. Returns the exit code: 1 on a parse error.
pub fn run(file: Option<PathBuf>, mapping: Option<String>) -> i32 {
    let (src, dir) = match (&file, mapping) {
        (Some(f), _) => match std::fs::read_to_string(f) {
            Ok(s) => (
                s,
                f.parent()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(".")),
            ),
            Err(e) => {
                eprintln!("failed to read mapping file {}: {e}", f.display());
                return 1;
            }
        },
        (None, Some(m)) => (m, PathBuf::from(".")),
        (None, None) => {
            eprintln!("usage: sluice blobl [-f FILE] [MAPPING]");
            return 1;
        }
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    run_io(
        &src,
        &dir,
        stdin.lock(),
        stdout.lock(),
        std::io::stderr().lock(),
    )
}

/// The CLI loop over any input/output streams (the tests drive it with buffers).
pub fn run_io(
    src: &str,
    dir: &std::path::Path,
    mut input: impl BufRead,
    mut out: impl Write,
    mut err: impl Write,
) -> i32 {
    let mapping = match Mapping::parse_in(src, dir) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(err, "failed to parse mapping: {e}");
            return 1;
        }
    };
    let mut arena = Bump::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(err, "failed to read input: {e}");
                return 1;
            }
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        arena.reset();
        let payload = arena.alloc_slice_copy(&line);
        let batch = [Message::new(&arena, payload)];
        let res = match mapping.exec(&arena, &batch, 0) {
            Ok(Some(msg)) => out
                .write_all(msg.payload)
                .and_then(|_| out.write_all(b"\n")),
            Ok(None) => out.write_all(b"\n"),
            Err(e) => {
                let _ = writeln!(err, "{e}");
                Ok(())
            }
        };
        if res.and_then(|_| out.flush()).is_err() {
            return 0;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(mapping: &str, input: &str) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_io(
            mapping,
            std::path::Path::new("."),
            input.as_bytes(),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn one_result_per_line() {
        let (code, out, err) = cli(
            "root = if this.n > 1 { this.n } else { deleted() }",
            "{\"n\":2}\n{\"n\":0}\r\n\"s\"\n{\"n\":3}",
        );
        assert_eq!(code, 0);
        assert_eq!(out, "2\n\n3\n");
        assert!(err.starts_with("failed assignment (line 1): cannot compare"));
    }

    #[test]
    fn strings_raw_and_parse_errors() {
        assert_eq!(cli("root = this.s", "{\"s\":\"a b\"}\n").1, "a b\n");
        let (code, out, err) = cli("root = this.(", "{}\n");
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(err, "failed to parse mapping: line 1 char 14: expected query, got end of input\nroot = this.(\n             ^\n");
    }
}
