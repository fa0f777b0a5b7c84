package encyclopedia_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/meshbot/meshbot/cmd/internal/encyclopedia"
)

func Example() {
	dir, err := os.MkdirTemp("", "encyclopedia-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ubuntu.db")

	added := time.Date(2007, 5, 1, 12, 0, 0, 0, time.UTC)
	err = encyclopedia.WriteFixture(path, []encyclopedia.Fact{
		{Name: "ubuntu", Value: "a Linux distribution", Author: "dk", Added: added, Popularity: 42,
			Log: []encyclopedia.LogEntry{{Author: "mdz", At: added.Add(time.Hour), OldValue: "a distro"}}},
		{Name: "distro", Value: "<alias> ubuntu", Author: "dk", Added: added},
		{Name: "warty", Value: "Ubuntu 4.10", Author: "dk", Added: added, Forgotten: true},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	db, err := encyclopedia.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	err = db.Each(func(f encyclopedia.Fact) error {
		if target, ok := f.Alias(); ok {
			fmt.Printf("%s -> %s\n", f.Name, target)
			return nil
		}
		fmt.Printf("%s = %q forgotten=%v popularity=%d edits=%d\n", f.Name, f.Value, f.Forgotten, f.Popularity, len(f.Log))
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	fmt.Println("skipped:", len(db.Skipped()))
	// Output:
	// distro -> ubuntu
	// ubuntu = "a Linux distribution" forgotten=false popularity=42 edits=1
	// warty = "Ubuntu 4.10" forgotten=true popularity=0 edits=0
	// skipped: 0
}

func ExampleFact_Reply() {
	f := encyclopedia.Fact{Name: "hi", Value: "<reply> Hello $who!"}
	text, ok := f.Reply()
	fmt.Printf("%q %v\n", text, ok)
	// Output: "Hello $who!" true
}
