-- Settings of the roles requests run as (ALTER ROLE … [IN DATABASE …] SET),
-- applied to each request of that role like PostgREST's impersonated role
-- settings. Only roles the connecting role can become, and only settings it
-- may set itself (user-context ones, ones granted with GRANT SET, and custom
-- dotted names); others would fail every request. Never `role` or
-- `session_authorization`: a request runs as the role its token names. Global
-- settings first, this database's after them, so applied in order the latter win.
select r.rolname::text as role,
       split_part(cfg, '=', 1) as name,
       substr(cfg, strpos(cfg, '=') + 1) as value
from pg_db_role_setting s
join pg_roles r on r.oid = s.setrole
cross join lateral unnest(s.setconfig) with ordinality as c(cfg, n)
left join pg_settings p on p.name = split_part(cfg, '=', 1)
where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
  and r.rolname <> current_user
  and pg_has_role(current_user, r.oid, 'member')
  and split_part(cfg, '=', 1) not in ('role', 'session_authorization')
  and case
        when p.name is null then split_part(cfg, '=', 1) like '%.%'
        else p.context = 'user' or has_parameter_privilege(p.name, 'set')
      end
order by r.rolname, s.setdatabase, c.n
