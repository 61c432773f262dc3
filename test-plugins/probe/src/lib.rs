//! Probe plugin (filled by the harness work).
