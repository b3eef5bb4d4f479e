-- When each user last signed in (the login form, or through the identity provider), for
-- `tagward user list` and the administration page.
alter table users add column last_sign_in_at timestamptz;
