-- Remove Passport's database and role from PostgreSQL (destroys all data).
DROP DATABASE IF EXISTS passport WITH (FORCE);
DROP ROLE IF EXISTS passport;
