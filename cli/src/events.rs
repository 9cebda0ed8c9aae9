//! Test events for `failsafectl test`: `'file-create path="C:\x y\a.exe" process=...'` or
//! JSON lines `{"event": "file-create", "path": "...", "pid": 4}`. Fields not given are
//! empty / 0 / false, except `name`, `extension` and `parent`, which are derived from
//! `path` as the sensor derives them. Paths given in device form
//! (`\Device\HarddiskVolume3\...`) or NT form (`\??\C:\...`) are turned into the form the
//! sensor reports (`C:\...`, ADR 0013) with the same function the driver uses, so an event
//! written either way evaluates as on the machine.

use failsafe_loader::text::{dos_form, rule_form, split_path, without_dos_device_prefix};
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

/// Volume device name -> DOS name, as the driver's volume table holds them.
#[derive(Clone, Debug)]
pub struct Volumes(pub Vec<(Vec<u16>, Vec<u16>)>);

impl Default for Volumes {
    /// `\Device\HarddiskVolume3` is `C:` (a default Windows install on a GPT disk).
    fn default() -> Self {
        Volumes(vec![(
            r"\Device\HarddiskVolume3".encode_utf16().collect(),
            "C:".encode_utf16().collect(),
        )])
    }
}

impl Volumes {
    /// Parses `DEVICE=DOS` (`--volume '\Device\HarddiskVolume2=D:'`).
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        let (dev, dos) = spec
            .split_once('=')
            .filter(|(d, x)| d.starts_with('\\') && !x.is_empty())
            .ok_or(format!(
                "--volume `{spec}`: expected DEVICE=DOS, e.g. \\Device\\HarddiskVolume2=D:"
            ))?;
        let dev: Vec<u16> = dev.trim_end_matches('\\').encode_utf16().collect();
        self.0.retain(|(d, _)| {
            !String::from_utf16_lossy(d).eq_ignore_ascii_case(&String::from_utf16_lossy(&dev))
        });
        self.0
            .push((dev, dos.trim_end_matches('\\').encode_utf16().collect()));
        Ok(())
    }

    /// The path as the sensor reports it: the core's `text::rule_form`, which the driver's
    /// `VolumeTable::dos_path` calls too (drive-letter form, no stream, UNC form of
    /// `\Device\Mup\...`, no trailing dots or spaces).
    pub fn dos_path(&self, path: &[u16]) -> Vec<u16> {
        let mut out = vec![0u16; path.len() + 64];
        let volume = |p: &[u16], o: &mut [u16]| {
            self.0
                .iter()
                .find_map(|(dev, dos)| dos_form(p, dev, dos, o).map(<[u16]>::len))
        };
        match rule_form(path, volume, &mut out) {
            Some(n) => out.get(..n).unwrap_or_default().to_vec(),
            None => without_dos_device_prefix(path).to_vec(),
        }
    }
}

fn build(
    kind: EventType,
    given: Vec<(String, Owned)>,
    volumes: &Volumes,
) -> Result<OwnedEvent, String> {
    let mut values: Vec<Option<Owned>> = vec![None; kind.arity()];
    for (name, v) in given {
        let Some(i) = kind.field_index(&name) else {
            let valid: Vec<_> = kind.fields().iter().map(|f| f.name).collect();
            return Err(format!(
                "event type {kind} has no field `{name}` ({}valid: {})",
                crate::source::did_you_mean(&name, valid.iter().copied()),
                valid.join(", ")
            ));
        };
        let slot = &mut values[usize::from(i)];
        if slot.is_some() {
            return Err(format!("field `{name}` given twice"));
        }
        *slot = Some(match v {
            Owned::S(p) if matches!(name.as_str(), "path" | "target-path" | "process") => {
                Owned::S(volumes.dos_path(&p))
            }
            v => v,
        });
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
            "true" => true,
            "false" => false,
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
pub fn parse_spec(spec: &str, volumes: &Volumes) -> Result<OwnedEvent, String> {
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
    build(kind, given, volumes)
}

/// A JSON object's members in order, duplicates kept (so they can be refused).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, serde_json::Value>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// One line of an events file: the event and, optionally, the verdict it must get.
#[derive(Debug)]
pub struct Line {
    pub event: OwnedEvent,
    /// `"expect": "block"` (allow, audit, block, pass).
    pub expect: Option<String>,
}

/// Parses one JSON line strictly: string fields take JSON strings, integer fields JSON
/// numbers (or a `"0x..."` string), flags `true`/`false`; a field given twice, an unknown
/// field or an unknown verdict is an error.
pub fn parse_json(line: &str, volumes: &Volumes) -> Result<Line, String> {
    let Members(members) = serde_json::from_str(line)
        .map_err(|e| format!("invalid JSON (expected one object per line): {e}"))?;
    let mut kind = None;
    let mut expect = None;
    let mut fields = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in members {
        if !seen.insert(k.clone()) {
            return Err(format!("field `{k}` given twice"));
        }
        match k.as_str() {
            "event" => {
                let name = v.as_str().ok_or("\"event\" must be a string")?;
                kind = Some(EventType::from_name(name).ok_or_else(|| {
                    let valid: Vec<_> = EventType::ALL.iter().map(|t| t.name()).collect();
                    format!(
                        "unknown event type `{name}` ({}expected one of: {})",
                        crate::source::did_you_mean(name, valid.iter().copied()),
                        valid.join(", ")
                    )
                })?);
            }
            "expect" => {
                let x = v.as_str().ok_or("\"expect\" must be a string")?;
                if !["allow", "audit", "block", "pass"].contains(&x) {
                    return Err(format!(
                        "\"expect\": `{x}` is not a verdict ({}expected allow, audit, block or pass)",
                        crate::source::did_you_mean(x, ["allow", "audit", "block", "pass"])
                    ));
                }
                expect = Some(x.to_owned());
            }
            _ => fields.push((k, v)),
        }
    }
    let kind = kind.ok_or("missing \"event\": \"file-create\" or \"file-set-info\"")?;
    let mut given = Vec::new();
    for (k, val) in fields {
        let fk = kind
            .field_index(&k)
            .and_then(|i| kind.field(i))
            .map(|f| f.kind);
        let v = match (fk, &val) {
            (None, _) => {
                // Reported with the valid names by `build`.
                Owned::S(Vec::new())
            }
            (Some(FieldKind::Str), serde_json::Value::String(s)) => {
                Owned::S(s.encode_utf16().collect())
            }
            (Some(FieldKind::Int), serde_json::Value::Number(n)) => Owned::I(n.as_u64().ok_or(
                format!("field `{k}`: expected a non-negative integer, found {n}"),
            )?),
            (Some(FieldKind::Int), serde_json::Value::String(s)) if s.starts_with("0x") => {
                Owned::I(int(s).ok_or(format!("field `{k}`: `{s}` is not a hex integer"))?)
            }
            (Some(FieldKind::Flag), serde_json::Value::Bool(b)) => Owned::F(*b),
            (Some(t), other) => {
                return Err(format!(
                    "field `{k}`: expected {}, found {other}",
                    match t {
                        FieldKind::Str => "a string",
                        FieldKind::Int => "a number",
                        FieldKind::Flag => "true or false",
                    }
                ));
            }
        };
        given.push((k, v));
    }
    Ok(Line {
        event: build(kind, given, volumes)?,
        expect,
    })
}

impl OwnedEvent {
    /// Every input by field name, as JSON data (`test --json`).
    pub fn json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), self.kind.name().into());
        for (f, v) in self.kind.fields().iter().zip(&self.values) {
            let x = match v {
                Owned::S(s) => String::from_utf16_lossy(s).into(),
                Owned::I(i) => (*i).into(),
                Owned::F(b) => (*b).into(),
            };
            m.insert(f.name.into(), x);
        }
        serde_json::Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_with_quotes_and_derived_fields() {
        let e = parse_spec(
            r#"file-create path="C:\Program Files\x\a.LOCKY" pid=0x10 is-directory=false"#,
            &Volumes::default(),
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
            parse_spec("file-open path=x", &Volumes::default())
                .unwrap_err()
                .contains("unknown event type `file-open`")
        );
        assert!(
            parse_spec("file-set-info disposition=1", &Volumes::default())
                .unwrap_err()
                .contains("valid: path, name")
        );
        assert!(
            parse_spec("file-create pid=abc", &Volumes::default())
                .unwrap_err()
                .contains("expected an integer")
        );
        assert!(
            parse_spec("file-create path=\"x", &Volumes::default())
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            parse_spec("", &Volumes::default())
                .unwrap_err()
                .contains("empty event")
        );
    }

    #[test]
    fn json_lines() {
        let v = Volumes::default();
        let e = parse_json(
            r#"{"event":"file-set-info","path":"C:\\a\\b.txt","is-delete":true,"info-class":13}"#,
            &v,
        )
        .unwrap()
        .event;
        assert_eq!(e.kind, EventType::FileSetInfo);
        assert_eq!(e.values[8], Owned::F(true));
        assert_eq!(e.values[6], Owned::I(13));
        assert!(parse_json("[1]", &v).unwrap_err().contains("JSON object"));
        // Strict: types, duplicates, flags.
        let err = |l: &str| parse_json(l, &v).unwrap_err();
        assert!(err(r#"{"event":"file-create","path":5}"#).contains("expected a string"));
        assert!(err(r#"{"event":"file-create","path":"a","path":"b"}"#).contains("twice"));
        assert!(err(r#"{"event":"file-create","is-directory":"yes"}"#).contains("true or false"));
        assert!(err(r#"{"event":"file-create","expect":"blok"}"#).contains("did you mean `block`"));
        assert!(parse_spec("file-create is-directory=1", &v).is_err());
    }

    #[test]
    fn device_and_dos_paths_give_the_same_event() {
        let v = Volumes::default();
        let a = parse_spec(
            r"file-create path=\Device\HarddiskVolume3\Windows\x.sys",
            &v,
        )
        .unwrap();
        let b = parse_spec(r"file-create path=C:\Windows\x.sys", &v).unwrap();
        assert_eq!(a.values, b.values);
        assert_eq!(
            a.values[3],
            Owned::S(r"C:\Windows".encode_utf16().collect())
        );
    }
}
