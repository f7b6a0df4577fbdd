//! Placeholder: the storage node lands with issue 2.
