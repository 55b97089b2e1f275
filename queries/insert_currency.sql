-- A currency's name and symbol as the countries source gives them. Params: :code, :name, :symbol.
INSERT INTO currencies (code, name, symbol) VALUES (:code, :name, :symbol)
