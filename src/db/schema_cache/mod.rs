//! The schema cache: what the gateway knows about the exposed functions.
//!
//! Loaded from `pg_catalog` (`schema_cache/functions.sql` for the functions,
//! smaller queries for the claims type and the roles' own settings) and
//! swapped in atomically by the server (`ArcSwapOption<SchemaCache>` in the app
//! state), so a request sees either the old cache or the new one, never half of
//! one. This module only reads the catalog and answers look-ups; when to reload
//! (NOTIFY, SIGUSR1) is the listener's business, and which overload to call is
//! the planner's. A function's declared admission limits ([`limits`]) are
//! read here too; enforcing them is `pipeline::admit`'s. So are the
//! parameters a function has the gateway fill from the claims
//! ([`from_claims`]); filling them is `pipeline::auth`'s.

pub mod from_claims;
pub mod limits;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::QualifiedName;

pub use limits::Limits;

const FUNCTIONS_SQL: &str = include_str!("functions.sql");
const CLAIMS_TYPE_SQL: &str = include_str!("types.sql");
const CLAIMS_CONTAINERS_SQL: &str = include_str!("claims_containers.sql");
const ROLE_SETTINGS_SQL: &str = include_str!("role_settings.sql");
const CITUS_SQL: &str = include_str!("citus.sql");
const DISTRIBUTED_SQL: &str = include_str!("distributed.sql");
const READ_FROM_SQL: &str = include_str!("read_from.sql");

/// Type OIDs of `json` and `jsonb` (fixed in `pg_type.dat`).
pub const JSON_OID: u32 = 114;
/// See [`JSON_OID`].
pub const JSONB_OID: u32 = 3802;
/// `record`'s OID: such a function cannot be called in FROM without a column list.
pub const RECORD_OID: u32 = 2249;
/// `void` (fixed in `pg_type.dat`).
const VOID_OID: u32 = 2278;

/// Volatility as PostgreSQL declares it (`provolatile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Volatility {
    /// `i`
    Immutable,
    /// `s`
    Stable,
    /// `v`
    Volatile,
}

/// An input parameter.
#[derive(Debug, Clone, Serialize)]
pub struct Param {
    /// Its name (empty when unnamed).
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// SQL spelling of the type (`format_type`).
    #[serde(rename = "type")]
    pub type_sql: String,
    /// False when it has a default.
    pub required: bool,
    /// A `VARIADIC` parameter (type is the array type).
    pub variadic: bool,
}

/// A column of a composite result.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// SQL spelling of the type.
    #[serde(rename = "type")]
    pub type_sql: String,
}

/// What a function returns.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Returns {
    /// `void`: answered with 204.
    Void,
    /// One value (or a set of them): a base type, domain, array, or record.
    Scalar {
        /// Type OID.
        type_oid: u32,
        /// SQL spelling.
        #[serde(rename = "type")]
        type_sql: String,
        /// `SETOF`.
        set: bool,
    },
    /// Rows: a composite type, `RETURNS TABLE` or OUT parameters.
    Composite {
        /// The composite type's OID, when it is a named type.
        type_oid: Option<u32>,
        /// Columns in order.
        columns: Vec<Column>,
        /// `SETOF` / `TABLE`.
        set: bool,
    },
}

impl Returns {
    /// Whether the function returns a set (an array in JSON).
    pub fn is_set(&self) -> bool {
        matches!(
            self,
            Returns::Scalar { set: true, .. } | Returns::Composite { set: true, .. }
        )
    }
}

/// A callable function of an exposed schema.
#[derive(Debug, Clone, Serialize)]
pub struct Routine {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// `pg_proc.oid`.
    pub oid: i64,
    /// Volatility.
    pub volatility: Volatility,
    /// Input parameters in order (IN, INOUT, VARIADIC).
    pub params: Vec<Param>,
    /// Result shape.
    pub returns: Returns,
    /// `COMMENT ON FUNCTION`.
    pub description: Option<String>,
    /// A Citus distributed function with a distribution argument and
    /// `force_delegation`: Citus runs a plain call of it on the worker that
    /// holds that argument's shard (see the query stage).
    #[serde(skip)]
    pub distributed: bool,
}

impl Routine {
    /// `schema.name`, unquoted: the admission state's label for the function.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// A function whose only input is one unnamed json/jsonb parameter receives
    /// the whole body (PostgREST's "single unnamed parameter" convention).
    pub fn takes_whole_body(&self) -> bool {
        matches!(self.params.as_slice(), [p] if p.name.is_empty() && (p.type_oid == JSON_OID || p.type_oid == JSONB_OID))
    }

    /// Whether the arguments named `keys` are a valid call: every key is a
    /// parameter, every required parameter is given.
    pub fn accepts(&self, keys: &[&str]) -> bool {
        if self.params.iter().any(|p| p.name.is_empty()) {
            return false;
        }
        keys.iter()
            .all(|k| self.params.iter().any(|p| p.name == *k))
            && self
                .params
                .iter()
                .all(|p| !p.required || keys.contains(&p.name.as_str()))
    }

    /// `schema.name(a => integer, b => text)`, as PostgREST lists overloads.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| format!("{} => {}", p.name, p.type_sql))
            .collect();
        format!("{}.{}({})", self.schema, self.name, params.join(", "))
    }
}

/// The configured claims type, as found in the catalog.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClaimsType {
    /// Its OID.
    pub oid: u32,
    /// A domain over json/jsonb rather than a composite.
    pub domain: bool,
}

/// Everything the gateway knows about the exposed functions.
#[derive(Debug, Serialize)]
pub struct SchemaCache {
    /// schema → name → overloads.
    functions: HashMap<String, HashMap<String, Vec<Arc<Routine>>>>,
    /// The claims type, when it exists.
    pub claims_type: Option<ClaimsType>,
    /// Types that contain the claims type (arrays, domains, rows): type OID →
    /// the array's element type, when it is an array.
    #[serde(skip)]
    pub claims_containers: HashMap<u32, Option<u32>>,
    /// `ALTER ROLE … SET` settings of the roles requests run as, role →
    /// (name, value) in the order to apply them. Not shown by `/schema_cache`:
    /// a custom setting may hold a secret.
    #[serde(skip)]
    pub role_settings: HashMap<String, RoleSettings>,
    /// The database is a Citus database (the citus extension is installed):
    /// request settings must then reach the workers too.
    pub citus: bool,
    /// Declared admission limits (`pgrpc.*` function settings), by
    /// `pg_proc.oid`; only functions that declare one are here.
    pub limits: HashMap<i64, Arc<Limits>>,
    /// Parameters filled from the claims (`pgrpc.from_claims`), by
    /// `pg_proc.oid`: positions into the function's parameters, ascending;
    /// only functions that declare usable ones are here.
    #[serde(skip)]
    pub from_claims: HashMap<i64, Arc<[usize]>>,
    /// OIDs of the functions whose reads are pinned to the primary
    /// (`set pgrpc.read_from = 'primary'`, `read_from.sql`).
    #[serde(skip)]
    pub primary_reads: HashSet<i64>,
    /// When it was loaded.
    #[serde(skip)]
    pub loaded_at: SystemTime,
    /// How long loading took.
    pub load_time: Duration,
}

/// A role's `ALTER ROLE … SET` settings, (name, value) in the order to apply
/// them; shared, so a request takes them without copying.
pub type RoleSettings = Arc<[(String, String)]>;

/// One row of `functions.sql`.
#[derive(Deserialize)]
struct RawRoutine {
    schema: String,
    name: String,
    oid: i64,
    volatility: String,
    returns_set: bool,
    n_defaults: i64,
    description: Option<String>,
    /// `pgrpc.*` entries of `proconfig`.
    config: Option<Vec<String>>,
    args: Vec<RawArg>,
    ret: RawReturn,
}

#[derive(Deserialize)]
struct RawArg {
    name: String,
    type_oid: u32,
    #[serde(rename = "type")]
    type_sql: String,
    mode: String,
    pseudo: Option<bool>,
    /// A JSON string or number can be its value (`functions.sql`).
    scalar: Option<bool>,
}

#[derive(Deserialize)]
struct RawReturn {
    oid: u32,
    #[serde(rename = "type")]
    type_sql: String,
    kind: String,
    columns: Option<Vec<RawColumn>>,
}

#[derive(Deserialize)]
struct RawColumn {
    name: String,
    type_oid: u32,
    #[serde(rename = "type")]
    type_sql: String,
}

impl RawRoutine {
    /// None for functions that cannot be called over HTTP (trigger functions,
    /// polymorphic or `internal` parameters).
    fn into_routine(self) -> Option<Routine> {
        if self.ret.kind == "p"
            && matches!(
                self.ret.type_sql.as_str(),
                "trigger"
                    | "event_trigger"
                    | "internal"
                    | "language_handler"
                    | "fdw_handler"
                    | "index_am_handler"
                    | "table_am_handler"
                    | "tsm_handler"
            )
        {
            return None;
        }
        let volatility = match self.volatility.as_str() {
            "i" => Volatility::Immutable,
            "s" => Volatility::Stable,
            _ => Volatility::Volatile,
        };
        let mut params = Vec::new();
        let mut outputs = Vec::new();
        for arg in self.args {
            match arg.mode.as_str() {
                "i" | "b" | "v" => {
                    if arg.pseudo == Some(true) {
                        return None;
                    }
                    params.push(Param {
                        name: arg.name.clone(),
                        type_oid: arg.type_oid,
                        type_sql: arg.type_sql.clone(),
                        required: true,
                        variadic: arg.mode == "v",
                    });
                    if arg.mode == "b" {
                        outputs.push(Column {
                            name: arg.name,
                            type_oid: arg.type_oid,
                            type_sql: arg.type_sql,
                        });
                    }
                }
                _ => outputs.push(Column {
                    name: arg.name,
                    type_oid: arg.type_oid,
                    type_sql: arg.type_sql,
                }),
            }
        }
        // pronargdefaults counts the trailing input parameters that have defaults.
        let n_defaults = usize::try_from(self.n_defaults)
            .unwrap_or(0)
            .min(params.len());
        let first_default = params.len() - n_defaults;
        for p in &mut params[first_default..] {
            p.required = false;
        }
        let set = self.returns_set;
        let returns = if self.ret.oid == VOID_OID {
            Returns::Void
        } else if !outputs.is_empty() {
            Returns::Composite {
                type_oid: None,
                columns: outputs,
                set,
            }
        } else if self.ret.kind == "c" {
            Returns::Composite {
                type_oid: Some(self.ret.oid),
                columns: self
                    .ret
                    .columns
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| Column {
                        name: c.name,
                        type_oid: c.type_oid,
                        type_sql: c.type_sql,
                    })
                    .collect(),
                set,
            }
        } else {
            Returns::Scalar {
                type_oid: self.ret.oid,
                type_sql: self.ret.type_sql,
                set,
            }
        };
        Some(Routine {
            schema: self.schema,
            name: self.name,
            oid: self.oid,
            volatility,
            params,
            returns,
            description: self.description,
            distributed: false,
        })
    }
}

/// Why loading failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The catalog query failed.
    #[error("schema cache query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// The query returned something this version does not understand.
    #[error("schema cache row could not be decoded: {0}")]
    Decode(#[from] serde_json::Error),
}

impl SchemaCache {
    /// Read the exposed schemas' functions and the claims type.
    pub async fn load(
        client: &tokio_postgres::Client,
        schemas: &[String],
        claims_type: &QualifiedName,
    ) -> Result<SchemaCache, LoadError> {
        let started = Instant::now();
        let citus: bool = client.query_one(CITUS_SQL, &[]).await?.try_get(0)?;
        let distributed: std::collections::HashSet<i64> = if citus {
            client
                .query(DISTRIBUTED_SQL, &[])
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?
        } else {
            Default::default()
        };
        let rows = client.query(FUNCTIONS_SQL, &[&schemas]).await?;
        let mut functions: HashMap<String, HashMap<String, Vec<Arc<Routine>>>> = HashMap::new();
        let mut limits = HashMap::new();
        let mut fill = HashMap::new();
        for row in rows {
            let text: &str = row.try_get(0)?;
            let mut raw: RawRoutine = serde_json::from_str(text)?;
            let config = raw.config.take().unwrap_or_default();
            // Per input parameter, in the order `into_routine` keeps them.
            let scalar: Vec<bool> = raw
                .args
                .iter()
                .filter(|a| matches!(a.mode.as_str(), "i" | "b" | "v"))
                .map(|a| a.scalar == Some(true))
                .collect();
            if let Some(mut routine) = raw.into_routine() {
                routine.distributed = distributed.contains(&routine.oid);
                let mut warnings = Vec::new();
                if let Some(l) =
                    Limits::from_config(config.iter().map(String::as_str), &mut warnings)
                {
                    limits.insert(routine.oid, Arc::new(l));
                }
                let filled = from_claims::from_config(
                    config.iter().map(String::as_str),
                    &routine.params,
                    &scalar,
                    &mut warnings,
                );
                if !filled.is_empty() {
                    fill.insert(routine.oid, Arc::from(filled));
                }
                for w in warnings {
                    tracing::warn!(function = %routine.signature(), "{w}");
                }
                functions
                    .entry(routine.schema.clone())
                    .or_default()
                    .entry(routine.name.clone())
                    .or_default()
                    .push(Arc::new(routine));
            }
        }
        let claims = client
            .query_opt(CLAIMS_TYPE_SQL, &[&claims_type.schema, &claims_type.name])
            .await?
            .and_then(|row| {
                let oid: i64 = row.get(0);
                let kind: String = row.get(1);
                let base: i64 = row.get(2);
                let oid = u32::try_from(oid).ok()?;
                match kind.as_str() {
                    "c" => Some(ClaimsType { oid, domain: false }),
                    "d" if base == i64::from(JSON_OID) || base == i64::from(JSONB_OID) => {
                        Some(ClaimsType { oid, domain: true })
                    }
                    _ => None,
                }
            });
        let mut claims_containers = HashMap::new();
        if let Some(ct) = claims {
            for row in client.query(CLAIMS_CONTAINERS_SQL, &[&ct.oid]).await? {
                let oid: i64 = row.try_get(0)?;
                let elem: Option<i64> = row.try_get(1)?;
                if let Ok(oid) = u32::try_from(oid) {
                    claims_containers.insert(oid, elem.and_then(|e| u32::try_from(e).ok()));
                }
            }
        }
        let mut by_role: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for row in client.query(ROLE_SETTINGS_SQL, &[]).await? {
            by_role
                .entry(row.try_get(0)?)
                .or_default()
                .push((row.try_get(1)?, row.try_get(2)?));
        }
        let role_settings = by_role
            .into_iter()
            .map(|(role, settings)| (role, RoleSettings::from(settings)))
            .collect();
        let mut primary_reads = HashSet::new();
        for row in client.query(READ_FROM_SQL, &[&schemas]).await? {
            primary_reads.insert(row.try_get::<_, i64>(0)?);
        }
        Ok(SchemaCache {
            functions,
            claims_type: claims,
            claims_containers,
            role_settings,
            citus,
            limits,
            from_claims: fill,
            primary_reads,
            loaded_at: SystemTime::now(),
            load_time: started.elapsed(),
        })
    }

    /// The overloads of `schema.name`.
    pub fn routines(&self, schema: &str, name: &str) -> Option<&[Arc<Routine>]> {
        self.functions.get(schema)?.get(name).map(Vec::as_slice)
    }

    /// The limits `oid` declared, if any.
    pub fn limits(&self, oid: i64) -> Option<&Arc<Limits>> {
        if self.limits.is_empty() {
            return None;
        }
        self.limits.get(&oid)
    }

    /// The parameters `oid` has filled from the claims, if any.
    pub fn from_claims(&self, oid: i64) -> Option<&Arc<[usize]>> {
        self.from_claims.get(&oid)
    }

    /// Whether `name` is a function of an exposed schema (metrics label only
    /// what exists, so clients cannot mint labels).
    pub fn has_name(&self, name: &str) -> bool {
        self.functions.values().any(|m| m.contains_key(name))
    }

    /// Function names of a schema (for "Perhaps you meant" hints).
    pub fn names<'a>(&'a self, schema: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.functions
            .get(schema)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }

    /// Every routine, in no particular order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Routine>> {
        self.functions.values().flat_map(|m| m.values().flatten())
    }

    /// How many routines are cached.
    pub fn len(&self) -> usize {
        self.all().count()
    }

    /// True when no routine is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A cache built from routines directly (for unit tests of pure stages).
    pub fn from_routines(routines: Vec<Routine>, claims_type: Option<ClaimsType>) -> SchemaCache {
        let mut functions: HashMap<String, HashMap<String, Vec<Arc<Routine>>>> = HashMap::new();
        for r in routines {
            functions
                .entry(r.schema.clone())
                .or_default()
                .entry(r.name.clone())
                .or_default()
                .push(Arc::new(r));
        }
        SchemaCache {
            functions,
            claims_type,
            claims_containers: HashMap::new(),
            role_settings: HashMap::new(),
            citus: false,
            limits: HashMap::new(),
            from_claims: HashMap::new(),
            primary_reads: HashSet::new(),
            loaded_at: SystemTime::now(),
            load_time: Duration::ZERO,
        }
    }
}
