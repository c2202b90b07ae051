//! Environment-variable interpolation on the raw config text, before YAML parsing
//! (upstream's rule): `${VAR}`, `${VAR:default}`, and `${{VAR}}` for a literal `${VAR}`.
//!
//! Bloblang interpolations (`${! ... }`, `${{! ... }}`) are not variable names and are
//! left untouched for the component that owns them.

use super::ConfigError;

/// Replaces every `${VAR}`/`${VAR:default}` using `lookup`; errors name the variable
/// and where it stands. Line numbers are kept as long as values hold no newline.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("${") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        // `${{NAME}}` escapes to a literal `${NAME}`.
        if let Some(inner) = after.strip_prefix('{') {
            if let Some(end) = inner.find("}}") {
                let name = &inner[..end];
                if is_var_spec(name) {
                    out.push_str("${");
                    out.push_str(name);
                    out.push('}');
                    rest = &inner[end + 2..];
                    continue;
                }
            }
        }
        match after.find('}') {
            Some(end) if is_var_spec(&after[..end]) => {
                let spec = &after[..end];
                let (name, default) = match spec.split_once(':') {
                    Some((n, d)) => (n, Some(d)),
                    None => (spec, None),
                };
                match (lookup(name).filter(|v| !v.is_empty()), default) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => {
                        let consumed = text.len() - rest.len() + pos;
                        let (line, col) = line_col(text, consumed);
                        return Err(ConfigError::at(
                            line,
                            col,
                            format!("required environment variable {name} is not set"),
                        ));
                    }
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `NAME` or `NAME:default`, NAME made of letters, digits and `_` (not starting with a digit).
fn is_var_spec(spec: &str) -> bool {
    let name = spec.split_once(':').map_or(spec, |(n, _)| n);
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !spec.contains('\n')
}

/// 1-based line and column of byte offset `at`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("kafka:9092".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_values_and_defaults() {
        let out = interpolate("a: ${HOST}\nb: ${NOPE:x:1}\nc: ${EMPTY:d}", env).unwrap();
        assert_eq!(out, "a: kafka:9092\nb: x:1\nc: d");
    }

    #[test]
    fn escapes_and_bloblang_are_left_alone() {
        let out = interpolate(
            "a: ${{HOST}}\nb: ${! @status }\nc: ${{! meta(\"x\") }}",
            env,
        )
        .unwrap();
        assert_eq!(out, "a: ${HOST}\nb: ${! @status }\nc: ${{! meta(\"x\") }}");
    }

    #[test]
    fn missing_variable_is_an_error_with_position() {
        let err = interpolate("a: 1\nb:   ${MISSING}\n", env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2:6: required environment variable MISSING is not set"
        );
    }
}
