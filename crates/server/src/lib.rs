//! The OVSDB JSON-RPC front end.
