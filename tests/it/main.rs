//! Integration tests: HTTP against the real app and a real PostgreSQL.
//! One binary, one throwaway cluster per run (see `harness`).

mod harness;

mod core_calls;
