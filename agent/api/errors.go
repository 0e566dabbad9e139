package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/schema"
)

// This file is the one place where errors become HTTP answers.

// answer is an error answer: its status and body, and for internal errors the
// cause to log (never sent to the client).
type answer struct {
	status int
	body   errorBody
	cause  error
}

func newAnswer(status int, en, vi string) *answer {
	return &answer{status: status, body: errorBody{Error: en, ErrorVI: vi}}
}

// Fixed answers for problems with the request itself. Each call returns a
// fresh answer, so a caller may add to it.
func answerNoRoute() *answer {
	return newAnswer(http.StatusNotFound, "no such endpoint", "không có địa chỉ API này")
}

func answerMethod() *answer {
	return newAnswer(http.StatusMethodNotAllowed, "method not allowed on this endpoint",
		"phương thức không được hỗ trợ tại địa chỉ này")
}

func answerNotFound() *answer {
	return newAnswer(http.StatusNotFound, "record not found", "không tìm thấy hồ sơ")
}

func answerMediaType() *answer {
	return newAnswer(http.StatusUnsupportedMediaType,
		"Content-Type must be application/json (UTF-8)",
		"Content-Type phải là application/json (UTF-8)")
}

func answerTooLarge() *answer {
	return newAnswer(http.StatusRequestEntityTooLarge,
		fmt.Sprintf("request body is larger than %d bytes", maxBodyBytes),
		fmt.Sprintf("nội dung yêu cầu lớn hơn %d byte", maxBodyBytes))
}

func answerHost() *answer {
	return newAnswer(http.StatusForbidden,
		"the Host header must name this machine (localhost or a loopback address): requests from web pages under other names are refused",
		"tiêu đề Host phải là máy này (localhost hoặc địa chỉ loopback): yêu cầu từ trang web dưới tên khác bị từ chối")
}

func answerOrigin() *answer {
	return newAnswer(http.StatusForbidden,
		"requests from web pages of other sites are refused",
		"yêu cầu từ trang web của trang khác bị từ chối")
}

func answerLimit() *answer {
	return newAnswer(http.StatusBadRequest,
		fmt.Sprintf("limit must be a whole number of at least 1 (at most %d are returned)", MaxListLimit),
		fmt.Sprintf("limit phải là số nguyên từ 1 trở lên (trả về tối đa %d)", MaxListLimit))
}

func answerAfter() *answer {
	return newAnswer(http.StatusBadRequest, "after must be a record id", "after phải là mã hồ sơ")
}

// answerFor classifies an error from reading, parsing or validating the
// input, or from the Backend.
func answerFor(err error) *answer {
	var maxErr *http.MaxBytesError
	var fieldErrs schema.Errors
	var fieldErr *schema.FieldError
	if refused := attach.Refusal(err); refused != nil {
		return newAnswer(attachStatus[refused.Code], refused.En, refused.Vi)
	}
	switch {
	case errors.As(err, &maxErr):
		return answerTooLarge()
	case errors.As(err, &fieldErrs):
		a := newAnswer(http.StatusBadRequest,
			fmt.Sprintf("%d invalid field(s)", len(fieldErrs)),
			fmt.Sprintf("%d trường không hợp lệ", len(fieldErrs)))
		for _, fe := range fieldErrs {
			a.body.Fields = append(a.body.Fields, FieldProblem{Field: fe.Field, Problem: fe.Problem, ProblemVI: fe.ProblemVI})
		}
		return a
	case errors.As(err, &fieldErr):
		a := newAnswer(http.StatusBadRequest, "1 invalid field(s)", "1 trường không hợp lệ")
		a.body.Fields = []FieldProblem{{Field: fieldErr.Field, Problem: fieldErr.Problem, ProblemVI: fieldErr.ProblemVI}}
		return a
	case errors.Is(err, schema.ErrNotObject):
		// The parser's detail names the position and the kind of token,
		// never a value, and helps whoever writes the integration.
		return newAnswer(http.StatusBadRequest, err.Error(),
			"nội dung phải là một đối tượng JSON, mọi giá trị đều là chuỗi (chữ số cũng phải đặt trong dấu nháy kép)")
	case errors.Is(err, schema.ErrNoFields):
		return newAnswer(http.StatusBadRequest, "the update sets no fields", "bản cập nhật không có trường nào")
	case errors.Is(err, ErrAttachmentNotFound):
		return newAnswer(http.StatusNotFound, "no attachment with this SHA-256 is known here", "không có tệp đính kèm nào có SHA-256 này")
	case errors.Is(err, ErrPruned):
		return newAnswer(http.StatusGone, ErrPruned.Error(), "dữ liệu của tệp đính kèm đã gửi lên máy chủ trung tâm và đã được xoá khỏi máy này")
	case errors.Is(err, ErrIncomplete):
		return newAnswer(http.StatusConflict, ErrIncomplete.Error(), "chưa có đủ dữ liệu của tệp đính kèm tại đây")
	case errors.Is(err, ErrNotFound):
		return answerNotFound()
	case errors.Is(err, ErrForbidden):
		return newAnswer(http.StatusForbidden, err.Error(), "chỉ máy quản trị hoặc máy chủ trung tâm mới được giải quyết")
	case errors.Is(err, ErrConflict):
		return newAnswer(http.StatusConflict, err.Error(), "xung đột với trạng thái hiện tại của hồ sơ")
	}
	a := newAnswer(http.StatusInternalServerError,
		"internal error in the agent; the agent's log has the cause",
		"lỗi nội bộ của agent; nguyên nhân được ghi trong nhật ký của agent")
	a.cause = err
	return a
}

// attachStatus is the HTTP status of each attachment refusal.
var attachStatus = map[attach.Code]int{
	attach.CodeKind:      http.StatusBadRequest,
	attach.CodeFinger:    http.StatusBadRequest,
	attach.CodeEmpty:     http.StatusBadRequest,
	attach.CodeTooLarge:  http.StatusRequestEntityTooLarge,
	attach.CodeMediaType: http.StatusUnsupportedMediaType,
	attach.CodeRepeated:  http.StatusUnprocessableEntity,
	attach.CodeManifest:  http.StatusUnprocessableEntity,
}

// errPanic stands for a handler that panicked; it answers 500.
var errPanic = errors.New("handler panicked")
