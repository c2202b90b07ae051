//! The shape every input, processor and output shares in YAML:
//! `{label: ..., <type>: {...}, processors: [...]}` with exactly one type key.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::components::processors::ProcessorConfig;

/// A set of component types: the enum of their configs, keyed by YAML type name.
pub trait Kind: Sized {
    /// What the component is called in errors ("output", "processor").
    const WHAT: &'static str;
    /// The YAML type names.
    const NAMES: &'static [&'static str];
    /// Whether `processors:` is allowed beside the type key (inputs and outputs).
    const HAS_PROCESSORS: bool;
    /// Reads the value of type key `name`.
    fn read<'de, A: MapAccess<'de>>(name: &str, map: &mut A) -> Result<Self, A::Error>;
}

/// One configured component.
#[derive(Debug, Clone)]
pub struct Component<K> {
    /// Names the component in metrics and logs (`label` in upstream configs).
    pub label: String,
    /// Processors that run on this component's own copy of the message.
    pub processors: Vec<Component<ProcessorConfig>>,
    pub kind: K,
}

impl<'de, K: Kind> Deserialize<'de> for Component<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<K>(PhantomData<K>);
        impl<'de, K: Kind> Visitor<'de> for V<K> {
            type Value = Component<K>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a {} object with one type key", K::WHAT)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Component<K>, A::Error> {
                let mut label = String::new();
                let mut processors = Vec::new();
                let mut kind: Option<(String, K)> = None;
                loop {
                    let seed = KeySeed::<K> {
                        first_kind: kind.as_ref().map(|(k, _)| k.as_str()),
                        _kind: PhantomData,
                    };
                    let Some(key) = map.next_key_seed(seed)? else {
                        break;
                    };
                    match key.as_str() {
                        "label" => label = map.next_value()?,
                        "processors" => processors = map.next_value()?,
                        name => {
                            let read = K::read(name, &mut map)?;
                            kind = Some((key, read));
                        }
                    }
                }
                let (_, kind) = kind.ok_or_else(|| {
                    de::Error::custom(format!(
                        "{} needs a type, one of: {}",
                        K::WHAT,
                        K::NAMES.join(", ")
                    ))
                })?;
                Ok(Component {
                    label,
                    processors,
                    kind,
                })
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// Reads a component's key and refuses unknown ones while serde_yaml is at that key,
/// so the error points at the key itself.
struct KeySeed<'k, K> {
    /// The type key already seen, if any.
    first_kind: Option<&'k str>,
    _kind: PhantomData<K>,
}

impl<'de, K: Kind> de::DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        crate::config::scalar_with(d, |name| match name {
            "label" => Ok(name.to_string()),
            "processors" if K::HAS_PROCESSORS => Ok(name.to_string()),
            _ if K::NAMES.contains(&name) => match self.first_kind {
                Some(first) => Err(format!(
                    "{} has two types, {first} and {name}: use one",
                    K::WHAT
                )),
                None => Ok(name.to_string()),
            },
            other => Err(format!(
                "unknown {} type or field `{other}`, expected one of: {}",
                K::WHAT,
                K::NAMES.join(", ")
            )),
        })
    }
}

/// Declares a `Kind` enum: `kinds!(OutputKind, "output", true, { "drop" => Drop(drop::Config), ... });`
#[macro_export]
macro_rules! kinds {
    ($(#[$m:meta])* $name:ident, $what:literal, $procs:literal, { $($key:literal => $var:ident($ty:ty)),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone)]
        pub enum $name { $($var($ty)),* }

        impl $crate::config::Kind for $name {
            const WHAT: &'static str = $what;
            const NAMES: &'static [&'static str] = &[$($key),*];
            const HAS_PROCESSORS: bool = $procs;
            fn read<'de, A: serde::de::MapAccess<'de>>(name: &str, map: &mut A) -> Result<Self, A::Error> {
                match name {
                    $($key => Ok($name::$var(map.next_value()?)),)*
                    _ => unreachable!("NAMES lists every type"),
                }
            }
        }
    };
}
