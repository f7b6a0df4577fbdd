//! Unit tests of the fragment store.
