"""Pure executor logic: order-link ids, retCode classes, secret scrubbing, venue records, lot
filters and position differences. Nothing here does I/O."""
