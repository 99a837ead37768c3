-- Create Passport's database and a least-privilege `passport` user on MariaDB/MySQL.
-- Run as an administrator:   mariadb -uroot < docs/sql/mariadb.sql
-- Replace 'change-me' with a long random password first (e.g. `openssl rand -base64 32`).
--
-- The user gets rights on the `passport` database only, and only the ones that
-- the application and its migrations need: no FILE, PROCESS, SUPER or GRANT OPTION,
-- nothing on other databases.  utf8mb4_bin keeps every Unicode name distinct
-- (Passport itself decides what "the same name in another letter case" means).

CREATE DATABASE IF NOT EXISTS passport CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE USER IF NOT EXISTS 'passport'@'localhost' IDENTIFIED BY 'change-me';
CREATE USER IF NOT EXISTS 'passport'@'127.0.0.1' IDENTIFIED BY 'change-me';

GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES
    ON passport.* TO 'passport'@'localhost';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES
    ON passport.* TO 'passport'@'127.0.0.1';
