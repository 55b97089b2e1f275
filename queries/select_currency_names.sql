-- Every currency's name and symbol as the countries source gave them. No params.
SELECT code, name, symbol FROM currencies
