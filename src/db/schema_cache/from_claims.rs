//! A function's parameters that the gateway fills from the claims, as a DBA
//! declares them on the function itself: `ALTER FUNCTION
//! api.refresh_token(auth.jwt_claims, extensions.citext) SET pgrpc.from_claims
//! = 'username'` (kept in `pg_proc.proconfig`, like the limits next door in
//! [`super::limits`]).
//!
//! The value is a comma-separated list of parameter names; each names a
//! parameter of the function and the claim of the same name. This module only
//! turns the entry into the validated parameter positions; filling the
//! arguments on a call is `pipeline::auth::fill_from_claims`'s job. A name
//! that is no parameter, or a parameter whose type no JSON string or number
//! can be (an array, a composite, json), is logged at load and ignored, as a
//! bad limit is: a typo never makes the gateway pass a client's value where a
//! claim was meant without a warning.

use super::Param;

/// The setting's name, as `proconfig` spells it (GUC names are lower-cased).
pub const SETTING: &str = "pgrpc.from_claims";

/// The positions (into `params`, ascending, each once) of the parameters the
/// `pgrpc.from_claims` entry of `entries` (`name=value` texts) names; empty
/// when there is none. `scalar[i]` says whether `params[i]` can take a JSON
/// string or number. `warnings` gets one line per unusable name, and one per
/// usable parameter without a default (a call whose claims lack it leaves it
/// out, which PostgreSQL then refuses).
pub fn from_config<'a>(
    entries: impl IntoIterator<Item = &'a str>,
    params: &[Param],
    scalar: &[bool],
    warnings: &mut Vec<String>,
) -> Vec<usize> {
    let mut out = Vec::new();
    for entry in entries {
        let Some((name, value)) = entry.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case(SETTING) {
            continue;
        }
        for wanted in value.split(',').map(str::trim) {
            if wanted.is_empty() {
                warnings.push(format!("{SETTING}: an empty name in {value:?}; ignored"));
                continue;
            }
            let Some(i) = params.iter().position(|p| p.name == wanted) else {
                warnings.push(format!(
                    "{SETTING}: {wanted:?} is no parameter of the function; ignored"
                ));
                continue;
            };
            let p = &params[i];
            if p.variadic || !scalar.get(i).copied().unwrap_or(false) {
                warnings.push(format!(
                    "{SETTING}: parameter {wanted:?} is of type {}, which a claim's string or number cannot be; ignored",
                    p.type_sql
                ));
                continue;
            }
            if out.contains(&i) {
                continue;
            }
            if p.required {
                warnings.push(format!(
                    "{SETTING}: parameter {wanted:?} has no default, so a call whose claims lack {wanted:?} fails; give it one"
                ));
            }
            out.push(i);
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, type_sql: &str, required: bool) -> Param {
        Param {
            name: name.into(),
            type_oid: 25,
            type_sql: type_sql.into(),
            required,
            variadic: false,
        }
    }

    fn parse(entries: &[&str], params: &[Param], scalar: &[bool]) -> (Vec<usize>, Vec<String>) {
        let mut warnings = Vec::new();
        let got = from_config(entries.iter().copied(), params, scalar, &mut warnings);
        (got, warnings)
    }

    #[test]
    fn names_become_positions_in_parameter_order() {
        let params = [
            param("token", "auth.jwt_claims", true),
            param("username", "extensions.citext", false),
            param("sub", "text", false),
        ];
        let scalar = [false, true, true];
        let (got, warnings) = parse(
            &[
                "pgrpc.max_concurrency=2",
                "pgrpc.from_claims= sub ,username,sub",
            ],
            &params,
            &scalar,
        );
        assert_eq!(got, vec![1, 2]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(parse(&[], &params, &scalar).0, Vec::<usize>::new());
    }

    #[test]
    fn unusable_names_warn_and_are_ignored() {
        let params = [
            param("token", "auth.jwt_claims", true),
            param("tags", "text[]", false),
            param("sub", "text", false),
        ];
        let scalar = [false, false, true];
        let (got, warnings) = parse(
            &["pgrpc.from_claims=nope, token, tags, , sub"],
            &params,
            &scalar,
        );
        assert_eq!(got, vec![2]);
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(
            warnings[0].contains("\"nope\" is no parameter"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("auth.jwt_claims"), "{warnings:?}");
    }

    #[test]
    fn a_parameter_without_a_default_is_kept_with_a_warning() {
        let params = [param("sub", "text", true)];
        let (got, warnings) = parse(&["pgrpc.from_claims=sub,sub"], &params, &[true]);
        assert_eq!(got, vec![0]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("no default"), "{warnings:?}");
    }
}
