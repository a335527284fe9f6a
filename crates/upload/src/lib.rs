//! The Chronote uploader (issue 3, in progress).
