from __future__ import annotations

from decimal import Decimal

import attrs

import durakit as dk


@attrs.frozen
class Order:
    order_id: str
    sku: str
    quantity: int
    unit_price: Decimal


@attrs.frozen
class Receipt:
    order_id: str
    reservation_id: str
    charge_id: str
    total: Decimal


app = dk.Durakit(dk.Config(app_name="shop"))  # state in ./durakit.db (SQLite)


@dk.step(max_retries=3)  # retried on exceptions; once it returns, checkpointed
def charge_card(order_id: str, amount: Decimal) -> str:
    return f"ch_{order_id}_{amount}"  # call your payment provider here


@app.workflow(name="checkout")
def checkout(ctx: dk.Context, order: Order) -> Receipt:
    reservation_id = ctx.run_step(lambda: f"res_{order.sku}", name="reserve_stock")
    total = order.unit_price * order.quantity
    charge_id = charge_card(order.order_id, total)
    return Receipt(order.order_id, reservation_id, charge_id, total)


if __name__ == "__main__":
    with app:  # launch(): open the database, resume workflows a crash interrupted
        order = Order("42", "espresso-machine", 2, Decimal("249.00"))
        handle = app.run_workflow(checkout, order, workflow_id="order-42")
        receipt: Receipt = handle.get_result()  # the same ID again returns this receipt
        print(receipt)
