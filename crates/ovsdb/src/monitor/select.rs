//! The `select` member of a `<monitor-request>` (RFC 7047 §4.1.5) and the kind of a row
//! update, in one bit space as ovsdb-server does (`enum ovsdb_monitor_selection`): a row
//! update of kind K is reported for a table (or column) only when its select mask has K.

/// A set of row-update kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Select(u8);

impl Select {
    pub(crate) const INITIAL: Select = Select(1);
    pub(crate) const INSERT: Select = Select(2);
    pub(crate) const DELETE: Select = Select(4);
    pub(crate) const MODIFY: Select = Select(8);
    pub(crate) const NONE: Select = Select(0);
    pub(crate) const ALL: Select = Select(15);

    /// The `select` members in the order ovsdb-server parses them.
    pub(crate) const MEMBERS: [(&'static str, Select); 4] = [
        ("initial", Select::INITIAL),
        ("insert", Select::INSERT),
        ("delete", Select::DELETE),
        ("modify", Select::MODIFY),
    ];

    pub(crate) fn contains(self, other: Select) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Select {
    type Output = Select;
    fn bitor(self, rhs: Select) -> Select {
        Select(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Select {
    fn bitor_assign(&mut self, rhs: Select) {
        self.0 |= rhs.0;
    }
}
