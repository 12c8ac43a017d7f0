//! halyard-faults: fault injection and history checking.
