//! Tests of PauseSpecBuilder.
