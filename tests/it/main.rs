//! Integration tests: HTTP against the real app and a real PostgreSQL.
//! One binary, one throwaway cluster per run (see `harness`).

mod citus;
mod harness;
mod process;
mod topology;

// Gateway core (issue 2).
mod binary;
mod core_calls;
mod core_errors;
mod core_query_params;
mod core_reload;
mod core_responses;
mod core_transactions;

// JWT (issue 3).
mod jwt_auth;
mod jwt_cache;
mod jwt_claims;
mod jwt_cookie;
mod jwt_jwks;
mod jwt_reasons;

// Operations and ecosystem (issue 5).
mod clients;
mod lifecycle;
mod openapi;
mod ops;

// Seed APIs in SQL (issue 4).
mod seed;
mod seed_code;
mod seed_identify;
mod seed_invites;
mod seed_lockout;
mod seed_register;
mod seed_rules;
mod seed_sessions;
mod seed_tokens;

// Parameters filled from the claims (issue 16).
mod from_claims;

// Sessions refused by the gateway (issue 15).
mod sessions_gateway;

// Robustness (issue 12).
mod admin_host;
mod deadlines;
mod embedded_restart;
// Deployment against production databases (issue 13).
mod failover;
mod gateways;
mod pgbouncer;
mod tls;
// Limits and bounded memory (issue 11).
mod limits;
// Slow, vanished and failing (issue 12).
mod disconnect;
mod outcome_unknown;
// Read replicas with read-your-writes (issue 14).
mod replica_suite;
mod replicas;
// Citus (issue 16): run with PGRPC_TEST_CITUS=1.
mod citus_bench;
mod citus_delegation;
mod citus_seed;
