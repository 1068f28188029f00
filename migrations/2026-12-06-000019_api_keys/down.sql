DROP TABLE api_key_merchants;
DROP TABLE api_keys;
