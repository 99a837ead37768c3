-- Remove Passport's database and user from MariaDB/MySQL (destroys all data).
DROP DATABASE IF EXISTS passport;
DROP USER IF EXISTS 'passport'@'localhost';
DROP USER IF EXISTS 'passport'@'127.0.0.1';
