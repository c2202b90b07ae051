//! `--set path=value` overrides: a dot path into the YAML tree (numeric segments index
//! lists) and a value parsed as a YAML scalar or flow value, so `runtime.cpus=[0]` works.

use serde_yaml::{Mapping, Value};

/// Applies one `path=value` override to `doc`, creating missing mappings on the way.
pub fn apply(doc: &mut Value, spec: &str) -> Result<(), String> {
    let (path, raw) = spec
        .split_once('=')
        .ok_or_else(|| "expected path=value".to_string())?;
    if path.is_empty() {
        return Err("empty path".into());
    }
    let value: Value = if raw.is_empty() {
        Value::String(String::new())
    } else {
        serde_yaml::from_str(raw).map_err(|e| format!("bad value: {e}"))?
    };
    let mut node = doc;
    for seg in path.split('.') {
        if node.is_null() {
            *node = Value::Mapping(Mapping::new());
        }
        node = match node {
            Value::Sequence(items) => {
                let i: usize = seg
                    .parse()
                    .map_err(|_| format!("segment {seg:?} indexes a list but is not a number"))?;
                let len = items.len();
                items
                    .get_mut(i)
                    .ok_or_else(|| format!("index {i} is out of range (list of {len})"))?
            }
            Value::Mapping(map) => map
                .entry(Value::String(seg.to_string()))
                .or_insert(Value::Null),
            _ => return Err(format!("segment {seg:?} goes into a scalar")),
        };
    }
    *node = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_scalars_lists_and_new_paths() {
        let mut doc: Value = serde_yaml::from_str("a: {b: 1}\nl: [{x: 1}, {x: 2}]").unwrap();
        apply(&mut doc, "a.b=5s").unwrap();
        apply(&mut doc, "l.1.x=3").unwrap();
        apply(&mut doc, "runtime.cpus=[0, 1]").unwrap();
        let want: Value =
            serde_yaml::from_str("a: {b: 5s}\nl: [{x: 1}, {x: 3}]\nruntime: {cpus: [0, 1]}")
                .unwrap();
        assert_eq!(doc, want);
        assert!(apply(&mut doc, "l.9.x=1").is_err());
        assert!(apply(&mut doc, "nothing").is_err());
    }
}
