// Package oncall is the expert on-call rotation: who holds the pager now,
// until when, and who is next; experts taking the pager until the next
// hand-over; and whom to page about a high-priority case nobody took.
//
// It knows nothing of Slack or Discord: a Member is a platform name and a
// user id, and the bot renders, mentions and sends.
//
// # Schedule
//
// The rotation, the hand-over ("Mon 09:00" weekly or "daily 09:00") and the
// time zone come from the config (Config, and the file's top-level
// timezone). Schedule turns them into shifts with no storage: slot 0 starts
// at the first hand-over at or after Reference (1 January 2024, 00:00 local
// time), slot k is held by Rotation[k mod n], and each slot runs from one
// hand-over to the next at the same local wall-clock time, so hand-overs
// follow daylight-saving changes (see Schedule for skipped and repeated wall
// times). Every replica computes the same answer.
//
// # Takes
//
// Service.Take records that an expert on the rotation holds the pager from
// now until the next hand-over: one oncall_take row per take, and an
// EventTaken outbox event (payload TakenEvent: who took it, until when, who
// was displaced) in the same transaction, so the desk hears of it once
// whichever replica delivers it. Service.Current applies the latest take in
// force over the schedule. A take ends at its shift's hand-over; a take by
// someone who has since left the rotation is ignored, and the schedule only
// names current members, so a person who leaves the rotation (or the config)
// is never mentioned or paged again.
//
// # Paging
//
// Service.PageTargets names the effective on-call and the next expert on the
// rotation after them (Schedule.NextAfter: the holder of the first later slot
// who is not the current holder). Service.PageFor is whom a case nobody took
// pages: that next expert, or the holder when the pager changed hands since
// the case opened (the holder then was told, not them). Config.PageAfter says when a high-priority
// case still new is paged; finding such cases, paging once and sending the
// direct messages are the bot's and casework's part.
package oncall
