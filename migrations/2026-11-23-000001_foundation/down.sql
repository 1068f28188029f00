DROP TABLE submissions;
DROP TABLE exceptions;
DROP TABLE transactions;
DROP TABLE record_links;
DROP TABLE record_refs;
DROP TABLE order_refs;
DROP TABLE record_log;
