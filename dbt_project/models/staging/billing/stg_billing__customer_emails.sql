-- Every address a billing customer has had, one row per customer and address, with when
-- the billing system first and last showed it. Like stg_crm__contact_emails: a billing
-- email change must not cut the customer off from records that carry the old address.
{{ address_history(source('billing', 'customers'), 'id', 'billing_customer_id') }}
