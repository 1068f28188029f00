//! Cash application (pure planning).
