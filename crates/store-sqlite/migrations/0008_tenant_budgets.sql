-- Per-tenant monthly budgets set over the API (`PUT /v1/tenants/{name}/budget`), for fleet-file and
-- API tenants alike; a row here overrides the fleet file's budget for that tenant.
CREATE TABLE tenant_budgets (
    tenant         TEXT   PRIMARY KEY,
    monthly_micros INTEGER NOT NULL,
    kind           TEXT   NOT NULL,
    updated_at     INTEGER NOT NULL
);
