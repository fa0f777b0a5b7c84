package mesh

import (
	"encoding/base64"
	"errors"
)

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }
