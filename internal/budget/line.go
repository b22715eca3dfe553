package budget

import (
	"container/list"
	"time"
)

// waiter is a caller that was denied and is expected back.
type waiter struct {
	key     string
	project string
	n       int       // tokens it asks for
	back    time.Time // when it was told to come back
}

// line holds the waiters of one class in the order they were first denied, which is the order
// the budget serves them in. It keeps the tokens they need per project, so that what a whole
// class needs is known without walking it: that is what a newcomer, which goes to the back, and
// every caller of a lower class wait for.
type line struct {
	order     *list.List // of *waiter, oldest first
	byKey     map[string]*list.Element
	byProject map[string]int // tokens needed
}

func newLine() *line {
	return &line{order: list.New(), byKey: map[string]*list.Element{}, byProject: map[string]int{}}
}

func (l *line) len() int { return l.order.Len() }

// add puts key at the back of the line, or updates it where it stands: a caller that comes back
// keeps its place.
func (l *line) add(key, project string, n int, back time.Time) {
	if e, ok := l.byKey[key]; ok {
		w := e.Value.(*waiter)
		l.uncount(w)
		w.project, w.n, w.back = project, n, back
		l.byProject[project] += n
		return
	}
	l.byKey[key] = l.order.PushBack(&waiter{key: key, project: project, n: n, back: back})
	l.byProject[project] += n
}

// remove takes key out of the line, if it is there.
func (l *line) remove(key string) {
	e, ok := l.byKey[key]
	if !ok {
		return
	}
	delete(l.byKey, key)
	l.uncount(l.order.Remove(e).(*waiter))
}

func (l *line) uncount(w *waiter) {
	if l.byProject[w.project] -= w.n; l.byProject[w.project] <= 0 {
		delete(l.byProject, w.project)
	}
}

// need is the tokens the waiters of the counted projects need.
func (l *line) need(counted func(project string) bool) int {
	n := 0
	for project, tokens := range l.byProject {
		if counted(project) {
			n += tokens
		}
	}
	return n
}

// needBefore is the tokens the waiters of the counted projects ahead of key need: all of them
// when key is not in the line, since a newcomer goes to the back.
func (l *line) needBefore(key string, counted func(project string) bool) int {
	stop, ok := l.byKey[key]
	if !ok {
		return l.need(counted)
	}
	n := 0
	for e := l.order.Front(); e != stop; e = e.Next() {
		if w := e.Value.(*waiter); counted(w.project) {
			n += w.n
		}
	}
	return n
}

// front is the first waiter of the counted projects, or nil.
func (l *line) front(counted func(project string) bool) *waiter {
	for e := l.order.Front(); e != nil; e = e.Next() {
		if w := e.Value.(*waiter); counted(w.project) {
			return w
		}
	}
	return nil
}

// removeOverdue takes out the waiters more than grace past the time they were told.
func (l *line) removeOverdue(now time.Time, grace time.Duration) {
	for e := l.order.Front(); e != nil; {
		next := e.Next()
		if w := e.Value.(*waiter); now.Sub(w.back) > grace {
			l.remove(w.key)
		}
		e = next
	}
}
