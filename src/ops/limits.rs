//! Process resource limits the gateway's caps depend on: the open-files
//! limit, since every client connection, pooled connection and listener is a
//! file descriptor.
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard limit (as Go's
//! runtime and many servers do): shells and systemd default the soft limit to
//! 1024, far below `server.max_connections`, and past it `accept` and new
//! database connections fail with EMFILE. It never lowers a limit and never
//! touches the hard limit; when even the hard limit is short, it says so.
//! Does not decide the caps (that is `config`) or enforce them (actix).

/// Raise the soft open-files limit to the hard one; warn when the result is
/// below `needed` descriptors. Returns the soft limit in force afterwards.
pub fn raise_open_files(needed: u64) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-files limit");
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; raising the soft limit
        // up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot raise the open-files limit");
        }
    }
    // rlim_t is u64 on Linux.
    let soft: u64 = lim.rlim_cur;
    if soft < needed {
        tracing::warn!(
            limit = soft,
            needed,
            "the open-files limit is below server.max_connections plus the pool; \
             raise it (ulimit -n, LimitNOFILE=) or lower server.max_connections"
        );
    }
    Some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let soft = raise_open_files(0).expect("getrlimit works on Linux");
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert_eq!(lim.rlim_cur, soft);
    }
}
