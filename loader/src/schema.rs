//! The event schema compiled into the sensor: event types (template types) and their
//! numbered, typed input fields. Content names fields by index; the validator rejects an
//! index at or beyond the arity of the rule's own event type (the 2024 "21 vs 20" class).

/// Schema version written into every content file; bumped when a field list (names,
/// order, types) changes. The form of path values (drive letter where the volume has one,
/// ADR 0013) is the sensor's, documented per field; it is not part of this number.
pub const SCHEMA_VERSION: u16 = 1;

/// The type of one input field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// UTF-16 text, compared case-insensitively.
    Str,
    /// Unsigned 64-bit integer.
    Int,
    /// Boolean.
    Flag,
}

impl FieldKind {
    /// Lower-case name used in messages.
    pub const fn name(self) -> &'static str {
        match self {
            FieldKind::Str => "string",
            FieldKind::Int => "integer",
            FieldKind::Flag => "flag",
        }
    }
}

/// One input field of an event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Name used in TOML sources and messages.
    pub name: &'static str,
    /// Type.
    pub kind: FieldKind,
    /// One-line description (documentation and `--help`).
    pub doc: &'static str,
}

const fn f(name: &'static str, kind: FieldKind, doc: &'static str) -> Field {
    Field { name, kind, doc }
}

/// Fields of `file-create` (pre-operation `IRP_MJ_CREATE`). Arity 11.
pub const FILE_CREATE_FIELDS: [Field; 11] = [
    f(
        "path",
        FieldKind::Str,
        "full path as authors write it: C:\\... on a volume with a drive letter, else \\Device\\HarddiskVolumeN\\...",
    ),
    f("name", FieldKind::Str, "final component, with extension"),
    f(
        "extension",
        FieldKind::Str,
        "text after the last '.' of the final component, without the dot",
    ),
    f(
        "parent",
        FieldKind::Str,
        "path of the parent directory (same form as path), without trailing separator",
    ),
    f(
        "process",
        FieldKind::Str,
        "image path of the requesting process (same form as path)",
    ),
    f("pid", FieldKind::Int, "requesting process id"),
    f("desired-access", FieldKind::Int, "ACCESS_MASK requested"),
    f(
        "disposition",
        FieldKind::Int,
        "create disposition (FILE_SUPERSEDE=0 .. FILE_OVERWRITE_IF=5)",
    ),
    f(
        "create-options",
        FieldKind::Int,
        "create options (low 24 bits of Parameters.Create.Options)",
    ),
    f(
        "is-directory",
        FieldKind::Flag,
        "FILE_DIRECTORY_FILE was requested",
    ),
    f(
        "kernel-mode",
        FieldKind::Flag,
        "the request came from kernel mode (RequestorMode == KernelMode)",
    ),
];

/// Fields of `file-set-info` (pre-operation `IRP_MJ_SET_INFORMATION`, rename and delete).
/// Arity 10: deliberately different from `file-create`.
pub const FILE_SET_INFO_FIELDS: [Field; 10] = [
    f(
        "path",
        FieldKind::Str,
        "full path of the file being renamed or deleted (C:\\... where the volume has a drive letter)",
    ),
    f("name", FieldKind::Str, "final component, with extension"),
    f(
        "extension",
        FieldKind::Str,
        "extension of the final component, without the dot",
    ),
    f("parent", FieldKind::Str, "path of the parent directory"),
    f(
        "process",
        FieldKind::Str,
        "image path of the requesting process",
    ),
    f("pid", FieldKind::Int, "requesting process id"),
    f(
        "info-class",
        FieldKind::Int,
        "FILE_INFORMATION_CLASS (10 rename, 13 disposition, 64/65 the Ex forms)",
    ),
    f(
        "target-path",
        FieldKind::Str,
        "rename or link target, same form as path (empty for delete)",
    ),
    f(
        "is-delete",
        FieldKind::Flag,
        "the operation deletes the file",
    ),
    f(
        "kernel-mode",
        FieldKind::Flag,
        "the request came from kernel mode",
    ),
];

/// An event type (template type) compiled into the sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// Pre-create: opening or creating a file or directory.
    FileCreate,
    /// Pre-set-information: rename or delete.
    FileSetInfo,
}

impl EventType {
    /// Every event type, in code order.
    pub const ALL: [EventType; 2] = [EventType::FileCreate, EventType::FileSetInfo];

    /// Wire code.
    pub const fn code(self) -> u8 {
        match self {
            EventType::FileCreate => 1,
            EventType::FileSetInfo => 2,
        }
    }

    /// From a wire code.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(EventType::FileCreate),
            2 => Some(EventType::FileSetInfo),
            _ => None,
        }
    }

    /// Name used in sources and messages.
    pub const fn name(self) -> &'static str {
        match self {
            EventType::FileCreate => "file-create",
            EventType::FileSetInfo => "file-set-info",
        }
    }

    /// From a name (exact, lower case).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The numbered input fields of this type.
    pub const fn fields(self) -> &'static [Field] {
        match self {
            EventType::FileCreate => &FILE_CREATE_FIELDS,
            EventType::FileSetInfo => &FILE_SET_INFO_FIELDS,
        }
    }

    /// Number of inputs the sensor supplies for this type.
    pub const fn arity(self) -> usize {
        self.fields().len()
    }

    /// The field at `index`, if it exists for this type.
    pub fn field(self, index: u8) -> Option<&'static Field> {
        self.fields().get(usize::from(index))
    }

    /// Index of the field called `name`.
    pub fn field_index(self, name: &str) -> Option<u8> {
        let pos = self.fields().iter().position(|fld| fld.name == name)?;
        u8::try_from(pos).ok()
    }

    /// Index into per-type tables (0-based).
    pub(crate) const fn slot(self) -> usize {
        match self {
            EventType::FileCreate => 0,
            EventType::FileSetInfo => 1,
        }
    }
}

impl core::fmt::Display for EventType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Comparison operators. Each applies to exactly one [`FieldKind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// String equals (case-insensitive).
    StrEquals,
    /// String starts with.
    StartsWith,
    /// String ends with.
    EndsWith,
    /// String contains.
    Contains,
    /// Wildcard: `*` any run (possibly empty), `?` exactly one code unit.
    Wildcard,
    /// Integer equals.
    IntEquals,
    /// `input & value != 0`.
    AnyBits,
    /// `input & value == value`.
    AllBits,
    /// `lo <= input <= hi`.
    Range,
    /// Flag is set.
    IsTrue,
    /// Flag is clear.
    IsFalse,
}

impl Op {
    /// Every operator.
    pub const ALL: [Op; 11] = [
        Op::StrEquals,
        Op::StartsWith,
        Op::EndsWith,
        Op::Contains,
        Op::Wildcard,
        Op::IntEquals,
        Op::AnyBits,
        Op::AllBits,
        Op::Range,
        Op::IsTrue,
        Op::IsFalse,
    ];

    /// Wire code.
    pub const fn code(self) -> u8 {
        match self {
            Op::StrEquals => 1,
            Op::StartsWith => 2,
            Op::EndsWith => 3,
            Op::Contains => 4,
            Op::Wildcard => 5,
            Op::IntEquals => 16,
            Op::AnyBits => 17,
            Op::AllBits => 18,
            Op::Range => 19,
            Op::IsTrue => 32,
            Op::IsFalse => 33,
        }
    }

    /// From a wire code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.code() == code)
    }

    /// The field kind this operator applies to.
    pub const fn kind(self) -> FieldKind {
        match self {
            Op::StrEquals | Op::StartsWith | Op::EndsWith | Op::Contains | Op::Wildcard => {
                FieldKind::Str
            }
            Op::IntEquals | Op::AnyBits | Op::AllBits | Op::Range => FieldKind::Int,
            Op::IsTrue | Op::IsFalse => FieldKind::Flag,
        }
    }

    /// Source name. `equals` is shared by strings and integers.
    pub const fn name(self) -> &'static str {
        match self {
            Op::StrEquals | Op::IntEquals => "equals",
            Op::StartsWith => "starts-with",
            Op::EndsWith => "ends-with",
            Op::Contains => "contains",
            Op::Wildcard => "wildcard",
            Op::AnyBits => "any-bits",
            Op::AllBits => "all-bits",
            Op::Range => "range",
            Op::IsTrue => "is-true",
            Op::IsFalse => "is-false",
        }
    }

    /// The operator called `name` for a field of `kind`.
    pub fn from_name(name: &str, kind: FieldKind) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.kind() == kind && op.name() == name)
    }

    /// Names valid for a field kind (for error messages).
    pub fn names_for(kind: FieldKind) -> impl Iterator<Item = &'static str> {
        Self::ALL
            .into_iter()
            .filter(move |op| op.kind() == kind)
            .map(Op::name)
    }
}

impl core::fmt::Display for Op {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a matching rule decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Explicit exception: let the operation through and stop evaluating.
    Allow,
    /// Let it through and record it.
    Audit,
    /// Fail it with `STATUS_ACCESS_DENIED`.
    Block,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 3] = [Action::Allow, Action::Audit, Action::Block];

    /// Wire code.
    pub const fn code(self) -> u8 {
        match self {
            Action::Allow => 1,
            Action::Audit => 2,
            Action::Block => 3,
        }
    }

    /// From a wire code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.code() == code)
    }

    /// Source name.
    pub const fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Audit => "audit",
            Action::Block => "block",
        }
    }

    /// From a source name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl core::fmt::Display for Action {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
