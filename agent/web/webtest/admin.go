package webtest

import (
	"fmt"

	"github.com/chromedp/chromedp"
)

// ConflictCard is the CSS selector of the queue's item for field of record.
func ConflictCard(record, field string) string {
	return fmt.Sprintf(`article.conflict[data-record=%s][data-field=%s]`, jsString(record), jsString(field))
}

// DuplicateCard is the CSS selector of the duplicate queue's group of exactly
// these records, in the order the agent lists them.
func DuplicateCard(records ...string) string {
	ids := ""
	for i, r := range records {
		if i > 0 {
			ids += " "
		}
		ids += r
	}
	return fmt.Sprintf(`article.duplicate[data-records=%s]`, jsString(ids))
}

// SettleConflict settles, in the conflict queue the page shows, the conflict
// on field of record by choosing the competing value value (as stored, not
// as shown: "1994-03-21", not "21/03/1994"), then waits until the item has
// left the queue. It works in either language.
func SettleConflict(record, field, value string) chromedp.Action[Void] {
	card := ConflictCard(record, field)
	mark := fmt.Sprint(clickSeq.Add(1))
	return chromedp.Steps(
		pollTrue(fmt.Sprintf("the value %q in %s", value, card), `(card, value, mark) => {
			const el = document.querySelector(card);
			if (!el) return false;
			const hit = Array.from(el.querySelectorAll('label.value-card')).find((v) => v.dataset.value === value);
			if (!hit) return false;
			hit.setAttribute('data-webtest-click', mark);
			return true;
		}`, card, value, mark),
		bounded(chromedp.Click(chromedp.CSS(`[data-webtest-click="`+mark+`"]`))),
		WaitEnabled(card+" .actions button"),
		Click(card+" .actions button"),
		WaitGone(card),
	)
}

// SettleConflictTyped settles the conflict on field of record with a value
// typed by the admin, and waits until the item has left the queue.
func SettleConflictTyped(record, field, value string) chromedp.Action[Void] {
	card := ConflictCard(record, field)
	return chromedp.Steps(
		Type(card+" .custom-input", value),
		WaitEnabled(card+" .actions button"),
		Click(card+" .actions button"),
		WaitGone(card),
	)
}

// WaitEnabled waits until the element matching the CSS selector is shown and
// enabled.
func WaitEnabled(sel string) chromedp.Action[Void] {
	return pollTrue(fmt.Sprintf("%q to be enabled", sel), `(sel) => {
		const el = document.querySelector(sel);
		return !!el && !el.disabled && el.offsetParent !== null;
	}`, sel)
}
