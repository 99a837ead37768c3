-- Create Passport's database and a least-privilege `passport` role on PostgreSQL.
-- Run as a superuser:   psql -U postgres -f docs/sql/postgresql.sql
-- Replace 'change-me' with a long random password first (e.g. `openssl rand -base64 32`).
--
-- The role can log in, owns only its own database and schema, and is no
-- superuser, cannot create roles or databases, and cannot reach other databases'
-- objects.  Nobody else (PUBLIC) may connect to or create objects in it.

CREATE ROLE passport LOGIN PASSWORD 'change-me'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;

CREATE DATABASE passport OWNER passport ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE passport FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE passport TO passport;

\connect passport
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO passport;
