//! Repository-wide checks that keep `ARCHITECTURE.md` true; the checks live in `tests/tidy.rs`.
