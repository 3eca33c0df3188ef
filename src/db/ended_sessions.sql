-- The ended sessions whose tokens may still pass exp + leeway ($1, seconds),
-- as the SQL of the application lists them (README, "Sessions"). sid as text:
-- the gateway keeps it as a number and needs no uuid type for that.
select sid::text, exp from pgrpc.ended_sessions($1)
