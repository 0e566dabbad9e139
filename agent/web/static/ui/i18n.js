// The page's words, Vietnamese first and English beside it: each entry holds
// both, so a label cannot exist in one language only. Placeholders are {name}.

const words = {
  // Header and navigation.
  title: ['fieldsync — Quản trị hồ sơ', 'fieldsync — Dossier admin'],
  nav_overview: ['Tổng quan', 'Overview'],
  nav_records: ['Hồ sơ', 'Dossiers'],
  nav_conflicts: ['Xung đột', 'Conflicts'],
  nav_duplicates: ['Có thể trùng', 'Possible duplicates'],
  lang_switch: ['English', 'Tiếng Việt'],
  lang_switch_label: ['Chuyển sang tiếng Anh', 'Switch to Vietnamese'],
  loading: ['Đang tải…', 'Loading…'],
  refresh: ['Tải lại', 'Refresh'],

  // Roles.
  role_field: ['Máy thực địa', 'Field laptop'],
  role_admin: ['Máy quản trị', 'Admin device'],
  role_hub: ['Máy chủ trung tâm (hub)', 'Hub'],

  // Overview.
  overview_title: ['Tổng quan', 'Overview'],
  alert_fork: ['Cảnh báo: nhật ký của thiết bị {device} bị rẽ nhánh tại số {seq} (máy khôi phục từ bản sao lưu cũ, hoặc một danh tính dùng trên hai máy). Không mất hồ sơ: thiết bị đó sẽ ghi lại các thay đổi của nhánh bị bỏ khi đồng bộ. Hãy kiểm tra thiết bị này.',
    'Alert: the log of device {device} forked at number {seq} (a laptop restored from an old backup, or one identity on two laptops). No dossier is lost: that device writes the changes of the losing branch again when it syncs. Check that device.'],
  alert_clone: ['Cảnh báo: danh tính của thiết bị {device} đang chạy cùng lúc ở hai địa chỉ ({addrs}), từ {since}: thư mục dữ liệu của nó đã bị sao chép sang một máy khác. Không mất hồ sơ, nhưng mỗi lần một bản ghi thì nhật ký lại rẽ nhánh. Hãy tắt một bản, cấp lại máy kia bằng “fieldsync device init”, và thu hồi danh tính bị sao chép nếu không kiểm soát được bản sao.',
    'Alert: the identity of device {device} is online at two addresses at once ({addrs}) since {since}: its data directory was copied to another laptop. No dossier is lost, but every write of one copy forks the log again. Stop one copy, provision the other anew with “fieldsync device init”, and revoke the copied identity if the copy is not under control.'],
  alert_other: ['Cảnh báo: {kind} ({device}, {seq})', 'Alert: {kind} ({device}, {seq})'],
  device: ['Thiết bị', 'Device'],
  role: ['Vai trò', 'Role'],
  deployment: ['Đơn vị triển khai', 'Deployment'],
  device_id: ['Mã thiết bị', 'Device ID'],
  records_count: ['Hồ sơ trên máy', 'Dossiers held'],
  conflicts_count: ['Xung đột cần xử lý', 'Conflicts to settle'],
  duplicates_count: ['Nhóm có thể trùng', 'Possible duplicate groups'],
  at_risk: ['Chỉ có trên máy này', 'Only on this laptop'],
  at_risk_hint: ['Hồ sơ do máy này nhập chưa có ở máy nào khác: mất máy là mất hồ sơ.',
    'Dossiers captured here and held nowhere else: lost if this laptop is lost.'],
  held_elsewhere: ['Đã có ở máy khác', 'Held elsewhere too'],
  held_elsewhere_hint: ['Hồ sơ do máy này nhập đã được ít nhất một máy khác giữ.',
    'Dossiers captured here that at least one other device holds.'],
  peers_title: ['Các máy trong đội', 'Team devices'],
  peers_none: ['Chưa thấy máy nào khác.', 'No other device seen yet.'],
  peer_name: ['Tên máy', 'Name'],
  peer_state: ['Trạng thái', 'State'],
  connected: ['Đang kết nối', 'Connected'],
  syncing: ['Đang đồng bộ', 'Syncing'],
  not_connected: ['Không kết nối', 'Not connected'],
  upstream_title: ['Gửi lên máy chủ trung tâm', 'Delivery to the hub'],
  upstream_is_hub: ['Máy này là máy chủ trung tâm: hồ sơ nhận được đã được lưu ở đây.',
    'This device is the hub: the dossiers it receives are stored here.'],
  hub_reachable: ['Kết nối máy chủ trung tâm', 'Hub connection'],
  reachable_yes: ['Đang kết nối', 'Connected'],
  reachable_no: ['Không kết nối', 'Not connected'],
  last_contact: ['Liên lạc lần cuối', 'Last contact'],
  never: ['Chưa bao giờ', 'Never'],
  delivered: ['Đã gửi lên', 'Delivered'],
  undelivered: ['Chưa gửi lên', 'Not yet delivered'],
  origins_title: ['Theo máy nhập', 'By capturing device'],
  captured: ['Đã nhập', 'Captured'],
  upload_progress: ['Đang gửi lên {hub}: đã gửi {sent}, còn {pending} thao tác.',
    'Uploading to {hub}: {sent} sent, {pending} operations left.'],
  no_hub: ['Máy này chưa được cấu hình máy chủ trung tâm.', 'No hub is configured on this device.'],

  // Dossier list.
  records_title: ['Danh sách hồ sơ', 'Dossiers'],
  search_label: ['Tìm theo họ tên, số định danh hoặc xã', 'Search by name, personal ID or commune'],
  search_placeholder: ['Ví dụ: Giàng Thị Mai, 0021…, Pả Vi', 'e.g. Giàng Thị Mai, 0021…, Pả Vi'],
  search_button: ['Tìm', 'Search'],
  col_id: ['Mã hồ sơ', 'Dossier ID'],
  col_conflicts: ['Xung đột', 'Conflicts'],
  records_none: ['Không có hồ sơ nào.', 'No dossiers.'],
  records_none_match: ['Không có hồ sơ nào khớp với “{q}”.', 'No dossier matches “{q}”.'],
  load_more: ['Xem thêm', 'Show more'],
  shown_count: ['Đang hiển thị {n} hồ sơ', 'Showing {n} dossiers'],
  merged_badge: ['Đã gộp', 'Merged'],

  // Dossier page.
  record_title: ['Hồ sơ', 'Dossier'],
  back_to_list: ['← Danh sách hồ sơ', '← All dossiers'],
  retired_note: ['Hồ sơ này đã được gộp vào một hồ sơ khác.', 'This dossier was merged into another one.'],
  retired_link: ['Mở hồ sơ được giữ lại', 'Open the surviving dossier'],
  merged_from_note: ['Các hồ sơ đã gộp vào hồ sơ này:', 'Dossiers merged into this one:'],
  fields_title: ['Thông tin', 'Details'],
  field_conflict: ['Xung đột: {n} giá trị', 'Conflict: {n} values'],
  shown_value: ['Giá trị đang hiển thị', 'Value shown'],
  go_settle: ['Giải quyết trong hàng xung đột', 'Settle in the conflict queue'],
  created: ['Tạo lúc', 'Created'],
  created_by: ['Máy tạo', 'Created on'],
  updated: ['Cập nhật', 'Updated'],
  history_title: ['Lịch sử thay đổi', 'History'],
  biometrics_title: ['Ảnh và vân tay', 'Photo and fingerprints'],
  photo: ['Ảnh chân dung', 'Face photo'],
  photo_none: ['Chưa có ảnh.', 'No photo yet.'],
  photo_incomplete: ['Ảnh đã chụp nhưng dữ liệu chưa về đủ máy này (đang đồng bộ).', 'The photo was taken, but not all of its bytes are on this device yet (syncing).'],
  fingerprints: ['Vân tay', 'Fingerprints'],
  fingers_count: ['{n}/10 ngón', '{n} of 10 fingers'],
  finger_missing: ['chưa có', 'missing'],
  finger_incomplete: ['đang về', 'on its way'],
  documents: ['Giấy tờ', 'Documents'],
  attachment_conflict: ['Xung đột: {n} tệp', 'Conflict: {n} files'],
  attachment_meta: ['{size} · {device} · {time}', '{size} · {device} · {time}'],
  finger_right_thumb: ['Ngón cái phải', 'Right thumb'],
  finger_right_index: ['Ngón trỏ phải', 'Right index'],
  finger_right_middle: ['Ngón giữa phải', 'Right middle'],
  finger_right_ring: ['Ngón áp út phải', 'Right ring'],
  finger_right_little: ['Ngón út phải', 'Right little'],
  finger_left_thumb: ['Ngón cái trái', 'Left thumb'],
  finger_left_index: ['Ngón trỏ trái', 'Left index'],
  finger_left_middle: ['Ngón giữa trái', 'Left middle'],
  finger_left_ring: ['Ngón áp út trái', 'Left ring'],
  finger_left_little: ['Ngón út trái', 'Left little'],
  history_none: ['Chưa có lịch sử.', 'No history.'],
  col_time: ['Thời gian', 'Time'],
  col_device: ['Máy', 'Device'],
  col_officer: ['Cán bộ', 'Officer'],
  col_kind: ['Thao tác', 'Action'],
  col_changes: ['Trường thay đổi', 'Fields changed'],
  kind_create: ['Tạo mới', 'Created'],
  kind_update: ['Sửa', 'Edited'],
  kind_resolve: ['Giải quyết xung đột', 'Conflict settled'],
  kind_merge: ['Gộp hồ sơ', 'Merged in'],
  kind_retire: ['Gộp vào hồ sơ khác', 'Merged away'],
  kind_distinct: ['Xác nhận khác người', 'Marked different people'],
  cleared: ['(đã xoá)', '(cleared)'],
  sys_retired_into: ['Gộp vào hồ sơ', 'Merged into dossier'],
  sys_merged_from: ['Gộp từ hồ sơ', 'Merged from dossier'],
  sys_distinct: ['Khác người với hồ sơ', 'Different person from dossier'],
  nobody: ['—', '—'],

  // Queues.
  read_only: ['Chỉ máy quản trị mới giải quyết được. Máy này chỉ xem.',
    'Only an admin device can settle. This device can only view.'],
  conflicts_title: ['Hàng xung đột', 'Conflict queue'],
  conflicts_intro: ['Hai cán bộ đã sửa cùng một trường khác nhau. Chọn giá trị đúng hoặc nhập giá trị đã sửa.',
    'Two officers changed the same field differently. Pick the right value or type a corrected one.'],
  conflicts_none: ['Không có xung đột nào cần giải quyết.', 'No conflicts to settle.'],
  value: ['Giá trị', 'Value'],
  by_device: ['Máy', 'Device'],
  by_officer: ['Cán bộ', 'Officer'],
  at_time: ['Lúc', 'At'],
  pick_value: ['Chọn giá trị này', 'Choose this value'],
  corrected_value: ['Nhập giá trị đã sửa', 'Type a corrected value'],
  settle: ['Giải quyết', 'Settle'],
  settled: ['Đã giải quyết xung đột của {name}.', 'Conflict settled for {name}.'],
  open_record: ['Mở hồ sơ', 'Open dossier'],
  empty_value: ['(trống)', '(empty)'],

  duplicates_title: ['Hồ sơ có thể trùng', 'Possible duplicates'],
  duplicates_intro: ['Các hồ sơ dưới đây có thể là cùng một người. Chọn hồ sơ giữ lại và giá trị của từng trường, rồi gộp; hoặc xác nhận đây không phải cùng một người.',
    'These dossiers may be the same person. Choose the dossier to keep and the value of each field, then merge; or confirm they are not the same person.'],
  duplicates_none: ['Không có hồ sơ nào có thể trùng.', 'No possible duplicates.'],
  reason_personal_id: ['Trùng số định danh cá nhân', 'Same personal ID number'],
  reason_name_dob: ['Trùng họ tên và ngày sinh', 'Same name and date of birth'],
  reason_merged_both_ways: ['Gộp vào nhau theo hai chiều: chọn hồ sơ giữ lại và gộp lại', 'Merged into each other: choose the dossier to keep and merge again'],
  field: ['Trường', 'Field'],
  keep_this: ['Giữ lại hồ sơ này', 'Keep this dossier'],
  include: ['Cùng người', 'Same person'],
  merge: ['Gộp hồ sơ', 'Merge dossiers'],
  distinct: ['Không phải cùng một người', 'Not the same person'],
  merge_summary: ['Giữ lại {keep}; gộp vào đó: {others}.', 'Keep {keep}; merge into it: {others}.'],
  need_two: ['Chọn ít nhất hai hồ sơ.', 'Choose at least two dossiers.'],
  merged_done: ['Đã gộp hồ sơ vào {name}.', 'Dossiers merged into {name}.'],
  distinct_done: ['Đã ghi nhận: không phải cùng một người.', 'Recorded: not the same person.'],
  differs: ['khác nhau', 'differs'],

  // Errors.
  error_title: ['Có lỗi', 'Something went wrong'],
  error_network: ['Không kết nối được với agent trên máy này. Kiểm tra agent còn chạy không rồi tải lại trang.',
    'Cannot reach the agent on this laptop. Check that the agent is running, then reload the page.'],
  error_status: ['Agent trả lời mã {status}.', 'The agent answered status {status}.'],
  error_bad_answer: ['Agent trả lời không đúng định dạng.', 'The agent sent an answer the page cannot read.'],
  not_found_route: ['Không có trang này.', 'No such page.'],
};

// Field labels of the default dossier schema, in display order. Fields the
// schema does not name are shown under their own name, after these.
const fieldWords = {
  full_name: ['Họ và tên', 'Full name'],
  date_of_birth: ['Ngày sinh', 'Date of birth'],
  sex: ['Giới tính', 'Sex'],
  personal_id: ['Số định danh cá nhân', 'Personal ID number'],
  ethnicity: ['Dân tộc', 'Ethnicity'],
  commune: ['Xã, phường', 'Commune'],
  permanent_address: ['Nơi thường trú', 'Permanent address'],
  hometown: ['Quê quán', 'Hometown'],
  phone: ['Số điện thoại', 'Phone'],
  notes: ['Ghi chú', 'Notes'],
  photo_ref: ['Ảnh chân dung (mã)', 'Photo (reference)'],
  fingerprint_ref: ['Vân tay (mã)', 'Fingerprints (reference)'],
};

const storageKey = 'fieldsync.lang';
const langs = ['vi', 'en'];

function readLang() {
  try {
    const v = window.localStorage.getItem(storageKey);
    return langs.includes(v) ? v : 'vi';
  } catch {
    // Storage may be off; Vietnamese is the default anyway.
    return 'vi';
  }
}

let current = readLang();

export function lang() {
  return current;
}

export function setLang(l) {
  if (!langs.includes(l)) return;
  current = l;
  try {
    window.localStorage.setItem(storageKey, l);
  } catch {
    // Not remembered across reloads; the switch still works now.
  }
  document.documentElement.lang = l;
}

function pick(entry) {
  return entry[current === 'en' ? 1 : 0];
}

function fill(s, params) {
  if (!params) return s;
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m));
}

// t returns the word for key in the current language. A missing key is a bug
// in the page: it is logged (the browser tests fail on console errors) and
// the key itself is shown.
export function t(key, params) {
  const entry = words[key];
  if (!entry) {
    console.error('fieldsync: no words for ' + key);
    return key;
  }
  return fill(pick(entry), params);
}

// both returns the word in both languages, current language first, for
// messages that must be understood whatever the switch says (errors).
export function both(key, params) {
  const entry = words[key];
  if (!entry) {
    console.error('fieldsync: no words for ' + key);
    return [key, key];
  }
  const vi = fill(entry[0], params);
  const en = fill(entry[1], params);
  return current === 'en' ? [en, vi] : [vi, en];
}

// roleLabel names a device role; a role this page does not know is shown
// as the agent wrote it.
export function roleLabel(role) {
  const entry = words['role_' + role];
  return entry ? pick(entry) : String(role || '—');
}

// kindLabel names what an op did; an unknown kind is shown as written.
export function kindLabel(kind) {
  const entry = words['kind_' + kind];
  return entry ? pick(entry) : String(kind || '—');
}

// fieldLabel names a field for people.
export function fieldLabel(name) {
  const entry = fieldWords[name];
  return entry ? pick(entry) : name;
}

// sortFields orders field names: the schema's order first, then the rest by
// name. System fields (leading "_") are left out: they are shown as what they
// mean, not as fields.
export function sortFields(names) {
  const order = Object.keys(fieldWords);
  const known = order.filter((n) => names.includes(n));
  const rest = names.filter((n) => !order.includes(n) && !n.startsWith('_')).sort();
  return known.concat(rest);
}

function pad(n) {
  return String(n).padStart(2, '0');
}

// formatTime shows an RFC 3339 time in the laptop's local time, day first as
// both Vietnamese and British forms write it. No Intl: its output depends on
// the browser's locale data.
export function formatTime(s) {
  if (!s) return t('never');
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return String(s);
  return pad(d.getDate()) + '/' + pad(d.getMonth() + 1) + '/' + d.getFullYear() + ' ' +
    pad(d.getHours()) + ':' + pad(d.getMinutes());
}

// formatDate shows a date field (YYYY-MM-DD or YYYY) day first.
export function formatDate(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s || '');
  return m ? m[3] + '/' + m[2] + '/' + m[1] : (s || '');
}

// formatValue shows a field's value: dates day first, the rest as stored.
export function formatValue(field, value) {
  if (value === undefined || value === null || value === '') return t('empty_value');
  if (field === 'date_of_birth') return formatDate(value);
  return String(value);
}
