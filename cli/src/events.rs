//! Test events for `failsafectl test`: `'file-create path="C:\x y\a.exe" process=...'` or
//! JSON lines `{"event": "file-create", "path": "...", "pid": 4}`. Fields not given are
//! empty / 0 / false, except `name`, `extension` and `parent`, which are derived from
//! `path` as the sensor derives them.

use failsafe_loader::text::split_path;
use failsafe_loader::{Event, EventType, FieldKind, Input};

/// One input, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owned {
    /// UTF-16 text.
    S(Vec<u16>),
    /// Integer.
    I(u64),
    /// Flag.
    F(bool),
}

/// An event with owned inputs, in field order, with the type's full arity.
#[derive(Clone, Debug)]
pub struct OwnedEvent {
    /// Event type.
    pub kind: EventType,
    /// Inputs in field order.
    pub values: Vec<Owned>,
}

impl OwnedEvent {
    /// Runs `f` with the borrowed event.
    pub fn with<R>(&self, f: impl FnOnce(&Event<'_>) -> R) -> R {
        let inputs: Vec<Input<'_>> = self
            .values
            .iter()
            .map(|v| match v {
                Owned::S(s) => Input::Str(s),
                Owned::I(x) => Input::Int(*x),
                Owned::F(b) => Input::Flag(*b),
            })
            .collect();
        f(&Event::new(self.kind, &inputs))
    }

    /// `field=value` pairs for display (non-default values only).
    pub fn describe(&self) -> String {
        let mut parts = vec![self.kind.name().to_owned()];
        for (f, v) in self.kind.fields().iter().zip(&self.values) {
            match v {
                Owned::S(s) if !s.is_empty() => {
                    parts.push(format!("{}=\"{}\"", f.name, String::from_utf16_lossy(s)))
                }
                Owned::I(x) if *x != 0 => parts.push(format!("{}={x}", f.name)),
                Owned::F(true) => parts.push(format!("{}=true", f.name)),
                _ => {}
            }
        }
        parts.join(" ")
    }
}

fn int(s: &str) -> Option<u64> {
    let t = s.replace('_', "");
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

fn build(kind: EventType, given: Vec<(String, Owned)>) -> Result<OwnedEvent, String> {
    let mut values: Vec<Option<Owned>> = vec![None; kind.arity()];
    for (name, v) in given {
        let Some(i) = kind.field_index(&name) else {
            let valid: Vec<_> = kind.fields().iter().map(|f| f.name).collect();
            return Err(format!(
                "event type {kind} has no field `{name}` (valid: {})",
                valid.join(", ")
            ));
        };
        values[usize::from(i)] = Some(v);
    }
    // Derive name / extension / parent from path unless given.
    if let Some(Some(Owned::S(path))) = values.first().cloned() {
        let (parent, name, ext) = split_path(&path);
        for (field, derived) in [("parent", parent), ("name", name), ("extension", ext)] {
            if let Some(i) = kind.field_index(field) {
                let slot = &mut values[usize::from(i)];
                if slot.is_none() {
                    *slot = Some(Owned::S(derived.to_vec()));
                }
            }
        }
    }
    let values = kind
        .fields()
        .iter()
        .zip(values)
        .map(|(f, v)| {
            v.unwrap_or(match f.kind {
                FieldKind::Str => Owned::S(Vec::new()),
                FieldKind::Int => Owned::I(0),
                FieldKind::Flag => Owned::F(false),
            })
        })
        .collect();
    Ok(OwnedEvent { kind, values })
}

fn typed(kind: EventType, name: &str, raw: &str) -> Result<Owned, String> {
    let fk = kind
        .field_index(name)
        .and_then(|i| kind.field(i))
        .map(|f| f.kind);
    Ok(match fk {
        Some(FieldKind::Int) => Owned::I(int(raw).ok_or(format!(
            "field `{name}`: expected an integer (decimal or 0x hex), found `{raw}`"
        ))?),
        Some(FieldKind::Flag) => Owned::F(match raw {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                return Err(format!(
                    "field `{name}`: expected true or false, found `{raw}`"
                ));
            }
        }),
        _ => Owned::S(raw.encode_utf16().collect()),
    })
}

fn split_words(spec: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for ch in spec.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if any {
        words.push(cur);
    }
    Ok(words)
}

/// Parses `'<event-type> field=value ...'`.
pub fn parse_spec(spec: &str) -> Result<OwnedEvent, String> {
    let words = split_words(spec)?;
    let Some((head, rest)) = words.split_first() else {
        return Err("empty event (expected `<event-type> field=value ...`)".into());
    };
    let kind = EventType::from_name(head).ok_or_else(|| {
        let valid: Vec<_> = EventType::ALL.iter().map(|t| t.name()).collect();
        format!(
            "unknown event type `{head}` (expected one of: {})",
            valid.join(", ")
        )
    })?;
    let mut given = Vec::new();
    for w in rest {
        let (k, v) = w
            .split_once('=')
            .ok_or(format!("expected field=value, found `{w}`"))?;
        given.push((k.to_owned(), typed(kind, k, v)?));
    }
    build(kind, given)
}

/// Parses one JSON line.
pub fn parse_json(line: &str) -> Result<OwnedEvent, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    let kind_name = obj
        .get("event")
        .and_then(|e| e.as_str())
        .ok_or("missing \"event\": \"file-create\" or \"file-set-info\"")?;
    let kind =
        EventType::from_name(kind_name).ok_or(format!("unknown event type `{kind_name}`"))?;
    let mut given = Vec::new();
    for (k, val) in obj.iter().filter(|(k, _)| k.as_str() != "event") {
        let raw = match val {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "field `{k}`: expected a string, number or boolean, found {other}"
                ));
            }
        };
        given.push((k.clone(), typed(kind, k, &raw)?));
    }
    build(kind, given)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_with_quotes_and_derived_fields() {
        let e = parse_spec(
            r#"file-create path="C:\Program Files\x\a.LOCKY" pid=0x10 is-directory=false"#,
        )
        .unwrap();
        assert_eq!(e.values[1], Owned::S("a.LOCKY".encode_utf16().collect()));
        assert_eq!(e.values[2], Owned::S("LOCKY".encode_utf16().collect()));
        assert_eq!(
            e.values[3],
            Owned::S(r"C:\Program Files\x".encode_utf16().collect())
        );
        assert_eq!(e.values[5], Owned::I(16));
        assert_eq!(e.values.len(), 11);
    }

    #[test]
    fn spec_errors_are_precise() {
        assert!(
            parse_spec("file-open path=x")
                .unwrap_err()
                .contains("unknown event type `file-open`")
        );
        assert!(
            parse_spec("file-set-info disposition=1")
                .unwrap_err()
                .contains("valid: path, name")
        );
        assert!(
            parse_spec("file-create pid=abc")
                .unwrap_err()
                .contains("expected an integer")
        );
        assert!(
            parse_spec("file-create path=\"x")
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(parse_spec("").unwrap_err().contains("empty event"));
    }

    #[test]
    fn json_lines() {
        let e = parse_json(
            r#"{"event":"file-set-info","path":"C:\\a\\b.txt","is-delete":true,"info-class":13}"#,
        )
        .unwrap();
        assert_eq!(e.kind, EventType::FileSetInfo);
        assert_eq!(e.values[8], Owned::F(true));
        assert_eq!(e.values[6], Owned::I(13));
        assert!(parse_json("[1]").unwrap_err().contains("JSON object"));
    }
}
