//! The OVSDB engine (RFC 7047 + Open vSwitch extensions). Pure: no I/O, no async, no clocks.
