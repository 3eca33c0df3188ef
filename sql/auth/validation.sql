-- Input checks shared by the endpoints: each raises PT422 (HTTP 422) with a
-- message that starts with the field's name, or returns the normalized value.

create function auth.required(p_value text, p_field text) returns text
language plpgsql immutable
as $$
begin
  if p_value is null or p_value = '' then
    -- Concatenation, not format: format is STABLE, this function IMMUTABLE.
    raise sqlstate 'PT422' using message = p_field || ' is required';
  end if;
  return p_value;
end
$$;
comment on function auth.required(text, text) is 'p_value, or PT422 "<field> is required" when it is null or empty.';
alter function auth.required(text, text) owner to auth_owner;
revoke all on function auth.required(text, text) from public;

create function auth.valid_username(p_username text) returns text
language plpgsql immutable
as $$
begin
  perform auth.required(p_username, 'username');
  if p_username !~ '^[A-Za-z0-9_.-]{3,32}$' then
    raise sqlstate 'PT422'
      using message = 'username must be 3 to 32 characters: letters, digits, "_", "." or "-"';
  end if;
  return p_username;
end
$$;
comment on function auth.valid_username(text) is 'The username if it is 3-32 of [A-Za-z0-9_.-], else PT422.';
alter function auth.valid_username(text) owner to auth_owner;
revoke all on function auth.valid_username(text) from public;

create function auth.valid_email(p_email text) returns text
language plpgsql immutable
as $$
declare
  v_email text := lower(btrim(p_email));
begin
  perform auth.required(v_email, 'email');
  -- Deliberately loose (one @, a dot in the domain, no spaces): the only real
  -- check of an address is a mail to it.
  if length(v_email) > 254 or v_email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' then
    raise sqlstate 'PT422' using message = 'email is not a valid address';
  end if;
  return v_email;
end
$$;
comment on function auth.valid_email(text) is 'The email trimmed and lower-cased if it looks like an address, else PT422.';
alter function auth.valid_email(text) owner to auth_owner;
revoke all on function auth.valid_email(text) from public;

create function auth.valid_password(p_password text, p_field text default 'password') returns text
language plpgsql immutable
as $$
begin
  perform auth.required(p_password, p_field);
  -- bcrypt ignores bytes past 72: refuse them rather than silently truncate.
  if octet_length(p_password) not between 8 and 72 then
    raise sqlstate 'PT422' using message = p_field || ' must be 8 to 72 bytes long';
  end if;
  return p_password;
end
$$;
comment on function auth.valid_password(text, text) is
  'The password if it is 8-72 bytes (bcrypt''s limit), else PT422 naming p_field.';
alter function auth.valid_password(text, text) owner to auth_owner;
revoke all on function auth.valid_password(text, text) from public;
