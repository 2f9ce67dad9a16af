-- Every address a CRM contact has had, one row per contact and address, with when the CRM
-- first and last showed it. An email change in the CRM must not cut the contact off from the
-- records that carry its old address (ESP events, web identifies), so identity links on
-- these as well as on the current address.
{{ address_history(source('crm', 'contacts'), 'contact_id', 'contact_id') }}
