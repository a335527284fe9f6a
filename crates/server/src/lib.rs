//! The Chronote server (issue 3, in progress).
