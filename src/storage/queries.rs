// placeholder
pub struct ExceptionFilter; pub struct ExceptionRow; pub struct Page; pub struct TransactionFilter; pub struct TransactionRow;
