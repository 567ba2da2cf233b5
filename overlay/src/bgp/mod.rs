//! The iBGP L3VPN speaker (issue 5 fills this in).
