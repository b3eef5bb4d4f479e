-- The e-mail address the identity provider or the directory gives a user, refreshed at each of
-- their sign-ins (null for local users, and for providers that give none).
alter table users add column email text check (length(email) <= 320);
