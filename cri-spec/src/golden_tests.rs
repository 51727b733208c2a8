//! Golden specs.
