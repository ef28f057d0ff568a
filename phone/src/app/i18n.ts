// The app's words in Uzbek (Latin), Russian and English. English defines the keys; the other two are
// typed against it, so a missing translation fails the type check. Chromium's ICU has no Uzbek month,
// weekday or number data, so dates and numbers are formatted here.

export type Lang = "uz" | "ru" | "en";
export const LANGS: Lang[] = ["uz", "ru", "en"];

type Plural = { one: string; other: string; few?: string; many?: string };

const en = {
  appName: "Kalit",
  tagline: "Your signing key stays on this phone. Any computer can ask it for a signature; you see what is signed and approve it.",
  language: "Language",
  langName: "English",
  firstRunTitle: "Welcome to Kalit",
  firstRunExplain:
    "Kalit keeps your signing keys on this phone, sealed under a PIN. A computer shows a QR code when a web portal asks for your signature; you scan it here, check what is signed, and approve with your PIN.",
  choosePin: "Choose a PIN (at least 6 characters)",
  repeatPin: "Repeat the PIN",
  createVault: "Create my vault",
  pinsDiffer: "The two PINs differ.",
  storageKept: "This browser promised to keep Kalit's data.",
  storageNotKept:
    "This browser did not promise to keep Kalit's data: it may delete it when space runs low. Install Kalit on the home screen and make a backup once you have a key.",
  keys: "Keys",
  sign: "Sign",
  settings: "Settings",
  history: "History",
  noKeys: "No keys yet. Make one to get a certificate.",
  keyCount: { one: "{n} key", other: "{n} keys" } as Plural,
  newKey: "New key",
  keyName: "Name of the key",
  algorithm: "Algorithm",
  noExport: "This key never leaves this phone (no export, no backup)",
  create: "Create",
  generating: "Making the key… (RSA can take several seconds)",
  created: "Created",
  fingerprint: "Fingerprint",
  certificate: "Certificate",
  noCertificate: "No certificate yet",
  subject: "Subject",
  issuer: "Issuer",
  validUntil: "Valid until",
  certEnded: "It ended on {date}: this certificate can no longer sign. Get a new one from your RA (Get a certificate).",
  certEndsToday: "It ends today ({date}): get a new certificate from your RA now.",
  certEnding: { one: "It ends in {n} day ({date}): get a new certificate from your RA before then.", other: "It ends in {n} days ({date}): get a new certificate from your RA before then." } as Plural,
  getCertificate: "Get a certificate",
  raAddress: "Address of the registration office (RA)",
  enrolCode: "Enrolment code",
  requesting: "Asking the registration office…",
  rootFingerprint: "Root certificate fingerprint: compare it with the one the registration office gave you",
  install: "Install",
  installed: "The certificate is installed.",
  register: "Register at the relay",
  relayAddress: "Relay address",
  login: "Login",
  registered: "Registered as {login} at {relay}.",
  registrations: "Registrations",
  deleteKey: "Delete",
  confirmDelete: "Delete the key {name}? This cannot be undone.",
  pin: "PIN",
  unlock: "Unlock",
  cancel: "Cancel",
  ok: "OK",
  back: "Back",
  pasteQr: "Scan the computer's QR code, or paste its text here (it starts with kalit:)",
  connect: "Connect",
  newComputerTitle: "A computer this phone has never seen",
  newComputerWarn:
    "Is this the computer in front of you? Only continue if you started the signing on it yourself. Someone else's computer can claim to be any web site.",
  nameComputer: "Name this computer (for example \"my laptop\")",
  computerKnown: "{name} (used {n} times before)",
  connecting: "Connecting to the computer…",
  connected: "Connected",
  vouchedBy: "The relay {relay} vouches for this web site (the page runs with no Kalit agent)",
  computerSays: "As the computer says (its Kalit agent read it from the browser)",
  compareCode: "The computer must show the same code. If it does not, stop.",
  waitingRequest: "Waiting for the computer's request…",
  requestFrom: "asks you to sign",
  document: "Document",
  size: "Size",
  type: "Type",
  sha256: "SHA-256",
  preview: "Preview",
  blindWarning: "This is not text the phone can show you; a raw signature over it can mean anything.",
  uncheckedWarning:
    "This document is too large to send to the phone: the phone received only the fingerprint (SHA-256) the computer computed and the first {first}. It cannot check the rest. Sign only if you trust this computer.",
  uncheckedConfirm: "I sign a document this phone could not check",
  checkedWhole: "The phone received all of it and computed its fingerprint itself.",
  pdfChecked: "A PDF: the phone checked that the computer only added this signature's field to it, or filled the form's own empty one.",
  pdfPages: "Pages",
  pdfTitle: "Title",
  pdfEarlier: { one: "{n} earlier signature stays as it is", other: "{n} earlier signatures stay as they are" } as Plural,
  pdfField: "Signature field",
  pdfFieldOn: "{field}, on page {n}",
  pdfFieldNowhere: "{field}, on no page",
  pdfPage: "Page {n} of the document",
  pdfDrawing: "Drawing the pages…",
  pdfMore: { one: "{n} more page is not drawn here.", other: "{n} more pages are not drawn here." } as Plural,
  pdfNotDrawn: "The pages could not be drawn: {reason}",
  pdfFirstText: "Text of page 1",
  approve: "Sign",
  decline: "Decline",
  signing: "Signing…",
  signed: "Signed \"{name}\"; the answer is on its way.",
  declined: "Declined \"{name}\".",
  withdrawn: "The computer withdrew this request; nothing was signed.",
  refused: "Refused a request: {reason}",
  ended: "The session ended.",
  backToPortal: "Back to {origin}",
  endSession: "End the session",
  notRegistered: "This phone is not registered with the relay in the QR code. Register a key first.",
  bytes: { one: "{n} byte", other: "{n} bytes" } as Plural,
  kilobytes: "{x} KB",
  megabytes: "{x} MB",
  formatRaw: "plain signature",
  formatCms: "CMS signature (.p7s)",
  formatPades: "signature inside the PDF",
  formatByDigest: "{format}, by the computer's digest",
  error: "Error",
  errorCode: "Code: {code}",
  offline: "No connection: the app works offline, signing needs the network.",
  noHistory: "Nothing signed yet.",
  backup: "Backup",
  backupExplain: "A backup file holds your keys (not the ones made never to leave this phone), sealed under a passphrase. Keep it somewhere safe: if this browser loses its data, the backup brings your keys back.",
  backupPassphrase: "Backup passphrase (at least 8 characters)",
  repeatPassphrase: "Repeat the passphrase",
  passphrasesDiffer: "The two passphrases differ.",
  makeBackup: "Make a backup",
  backupMade: "The backup file is ready: {file}.",
  skippedNoExport: "Not in the backup (made never to leave this phone): {keys}",
  restore: "Restore from a backup",
  backupFile: "Backup file",
  restored: "Restored: {keys}. Register again at your relay: a device key never leaves its phone.",
  changePin: "Change the PIN",
  currentPin: "Current PIN",
  newPin: "New PIN (at least 6 characters)",
  pinChanged: "The PIN is changed.",
  working: "Working… (this takes a few seconds)",
  devices: "Devices",
  thisPhone: "this phone",
  removeDevice: "Remove",
  confirmRemoveDevice: "Remove the device {name} from {login}? Use this for a lost phone. It can no longer sign for you.",
  deviceRemoved: "The device was removed.",
  registeredAt: "Registered",
  storageFull: "The phone's storage refused to save (is it full?). Nothing was changed; free some space and try again.",
  relayUnreachable: "Cannot reach the relay at {address}. Check the phone's network connection, then try again.",
  raUnreachable: "Cannot reach the registration office at {address}. Check the phone's network connection, then try again.",
  err_wrong_pin: "Wrong PIN.",
  err_locked: "The vault is locked after too many wrong PINs. Restore a backup to use your keys again.",
  err_try_later: "Too many wrong PINs: wait a moment before the next try.",
  err_wrong_password: "Wrong password, or the file is damaged.",
  err_weak_secret: "Too short: choose a longer one.",
  err_unavailable: "The service could not be reached, or answered something unreadable. Check the address and the connection.",
  err_invalid_input: "This was not accepted as it is.",
  err_not_found: "Not found.",
  err_expired: "This has expired: start again on the computer.",
  err_refused_by_policy: "Refused, to protect you.",
  err_untrusted_certificate: "The certificate could not be trusted.",
  err_key_mismatch: "The answer was for another key; nothing was installed.",
  err_already_exists: "This exists already.",
  err_login_taken: "This login belongs to someone else.",
  err_rate_limited: "Too many tries: wait a minute.",
  err_channel: "The secure connection to the computer broke.",
  err_corrupt: "Stored data is damaged.",
  err_declined: "Stopped.",
  err_other: "Something went wrong.",
  importPfx: "Import a PFX file",
  policy: "Policy",
  policyNoExport: "never leaves this phone: no export, no backup",
  policyExportable: "can be exported as a PFX and is in backups",
  myKey: "my key",
  enrolLinkExplain: "The registration office {ra} gave you an enrolment code. Which key should get the certificate?",
  chooseLogin: "This phone has several logins at this relay. Which one signs?",
  pfxFile: "PFX or P12 file (from your flash drive)",
  pfxPassword: "The PFX file's password",
  exportPfx: "Export as a PFX file",
  newPfxPassword: "A password for the PFX file (at least 8 characters)",
  pfxReady: "The PFX file is ready: {file}.",
  scan: "Scan with the camera",
  stopScan: "Stop",
  scanning: "Point the camera at the QR code on the computer's screen.",
  cameraRefused: "The camera was not allowed. Allow it in the browser's site settings, or paste the QR's text.",
  cameraMissing: "This device has no camera the browser can use. Paste the QR's text instead.",
};

export type Key = keyof typeof en;
type Dict = { [K in Key]: (typeof en)[K] extends Plural ? Plural : string };

const uz: Dict = {
  appName: "Kalit",
  tagline: "Imzo kalitingiz shu telefonda qoladi. Istalgan kompyuter undan imzo soʻrashi mumkin; siz nima imzolanayotganini koʻrib, tasdiqlaysiz.",
  language: "Til",
  langName: "Oʻzbekcha",
  firstRunTitle: "Kalitga xush kelibsiz",
  firstRunExplain:
    "Kalit imzo kalitlaringizni shu telefonda PIN-kod ostida saqlaydi. Veb-portal imzo soʻraganda kompyuter QR-kod koʻrsatadi; uni shu yerda skanerlaysiz, nima imzolanayotganini tekshirasiz va PIN-kod bilan tasdiqlaysiz.",
  choosePin: "PIN-kod tanlang (kamida 6 belgi)",
  repeatPin: "PIN-kodni takrorlang",
  createVault: "Xazinamni yaratish",
  pinsDiffer: "Ikki PIN-kod bir xil emas.",
  storageKept: "Bu brauzer Kalit maʼlumotlarini saqlashga vaʼda berdi.",
  storageNotKept:
    "Bu brauzer Kalit maʼlumotlarini saqlashga vaʼda bermadi: joy yetmasa, ularni oʻchirib yuborishi mumkin. Kalitni bosh ekranga oʻrnating va kalit yaratgach, zaxira nusxa oling.",
  keys: "Kalitlar",
  sign: "Imzolash",
  settings: "Sozlamalar",
  history: "Tarix",
  noKeys: "Hali kalit yoʻq. Sertifikat olish uchun kalit yarating.",
  keyCount: { one: "{n} ta kalit", other: "{n} ta kalit" },
  newKey: "Yangi kalit",
  keyName: "Kalit nomi",
  algorithm: "Algoritm",
  noExport: "Bu kalit telefondan hech qachon chiqmaydi (eksport ham, zaxira ham yoʻq)",
  create: "Yaratish",
  generating: "Kalit yaratilmoqda… (RSA bir necha soniya olishi mumkin)",
  created: "Yaratilgan",
  fingerprint: "Barmoq izi",
  certificate: "Sertifikat",
  noCertificate: "Hali sertifikat yoʻq",
  subject: "Egasi",
  issuer: "Beruvchi",
  validUntil: "Amal qilish muddati",
  certEnded: "Muddati {date} tugagan: bu sertifikat bilan endi imzolab boʻlmaydi. RA dan yangisini oling (Sertifikat olish).",
  certEndsToday: "Muddati bugun tugaydi ({date}): RA dan hozir yangi sertifikat oling.",
  certEnding: { one: "Muddati {n} kundan keyin tugaydi ({date}): undan oldin RA dan yangi sertifikat oling.", other: "Muddati {n} kundan keyin tugaydi ({date}): undan oldin RA dan yangi sertifikat oling." },
  getCertificate: "Sertifikat olish",
  raAddress: "Roʻyxatga olish markazi (RA) manzili",
  enrolCode: "Roʻyxatdan oʻtish kodi",
  requesting: "Roʻyxatga olish markazidan soʻralmoqda…",
  rootFingerprint: "Ildiz sertifikatining barmoq izi: uni roʻyxatga olish markazi bergani bilan solishtiring",
  install: "Oʻrnatish",
  installed: "Sertifikat oʻrnatildi.",
  register: "Relayda roʻyxatdan oʻtish",
  relayAddress: "Relay manzili",
  login: "Login",
  registered: "{relay} relayida {login} sifatida roʻyxatdan oʻtildi.",
  registrations: "Roʻyxatdan oʻtishlar",
  deleteKey: "Oʻchirish",
  confirmDelete: "{name} kaliti oʻchirilsinmi? Buni qaytarib boʻlmaydi.",
  pin: "PIN-kod",
  unlock: "Ochish",
  cancel: "Bekor qilish",
  ok: "OK",
  back: "Orqaga",
  pasteQr: "Kompyuterdagi QR-kodni skanerlang yoki uning matnini shu yerga qoʻying (kalit: bilan boshlanadi)",
  connect: "Ulanish",
  newComputerTitle: "Bu telefon hech qachon koʻrmagan kompyuter",
  newComputerWarn:
    "Bu qarshingizdagi kompyutermi? Imzolashni unda oʻzingiz boshlagan boʻlsangizgina davom eting. Begona kompyuter oʻzini istalgan sayt deb koʻrsatishi mumkin.",
  nameComputer: "Bu kompyuterga nom bering (masalan, «mening noutbukim»)",
  computerKnown: "{name} (avval {n} marta ishlatilgan)",
  connecting: "Kompyuterga ulanilmoqda…",
  connected: "Ulandi",
  vouchedBy: "Bu veb-sayt manzilini {relay} relayi tasdiqlaydi (sahifa Kalit agentisiz ishlaydi)",
  computerSays: "Kompyuter aytishicha (Kalit agenti uni brauzerdan oʻqigan)",
  compareCode: "Kompyuter aynan shu kodni koʻrsatishi kerak. Aks holda toʻxtating.",
  waitingRequest: "Kompyuter soʻrovi kutilmoqda…",
  requestFrom: "imzolashingizni soʻramoqda",
  document: "Hujjat",
  size: "Hajmi",
  type: "Turi",
  sha256: "SHA-256",
  preview: "Koʻrinishi",
  blindWarning: "Bu telefon koʻrsata oladigan matn emas; uning ustidagi xom imzo har qanday maʼnoni anglatishi mumkin.",
  uncheckedWarning:
    "Bu hujjat telefonga yuborish uchun juda katta: telefon faqat kompyuter hisoblagan barmoq izini (SHA-256) va dastlabki {first}ni oldi. Qolganini tekshira olmaydi. Faqat bu kompyuterga ishonsangiz imzolang.",
  uncheckedConfirm: "Telefon tekshira olmagan hujjatni imzolayapman",
  checkedWhole: "Telefon hujjatni toʻliq oldi va barmoq izini oʻzi hisobladi.",
  pdfChecked: "PDF: telefon kompyuter unga faqat shu imzo maydonini qoʻshganini yoki shakldagi boʻsh maydonni toʻldirganini tekshirdi.",
  pdfPages: "Sahifalar",
  pdfTitle: "Sarlavha",
  pdfEarlier: { one: "Avvalgi {n} ta imzo oʻzgarishsiz qoladi", other: "Avvalgi {n} ta imzo oʻzgarishsiz qoladi" },
  pdfField: "Imzo maydoni",
  pdfFieldOn: "{field}, {n}-sahifada",
  pdfFieldNowhere: "{field}, hech bir sahifada emas",
  pdfPage: "Hujjatning {n}-sahifasi",
  pdfDrawing: "Sahifalar chizilmoqda…",
  pdfMore: { one: "Yana {n} ta sahifa bu yerda chizilmagan.", other: "Yana {n} ta sahifa bu yerda chizilmagan." },
  pdfNotDrawn: "Sahifalarni chizib boʻlmadi: {reason}",
  pdfFirstText: "1-sahifa matni",
  approve: "Imzolash",
  decline: "Rad etish",
  signing: "Imzolanmoqda…",
  signed: "«{name}» imzolandi; javob yuborildi.",
  declined: "«{name}» rad etildi.",
  withdrawn: "Kompyuter bu soʻrovni qaytarib oldi; hech narsa imzolanmadi.",
  refused: "Soʻrov rad etildi: {reason}",
  ended: "Seans tugadi.",
  backToPortal: "{origin} saytiga qaytish",
  endSession: "Seansni tugatish",
  notRegistered: "Bu telefon QR-koddagi relayda roʻyxatdan oʻtmagan. Avval kalitni roʻyxatdan oʻtkazing.",
  bytes: { one: "{n} bayt", other: "{n} bayt" },
  kilobytes: "{x} KB",
  megabytes: "{x} MB",
  formatRaw: "oddiy imzo",
  formatCms: "CMS imzo (.p7s)",
  formatPades: "PDF ichidagi imzo",
  formatByDigest: "{format}, kompyuter bergan xesh boʻyicha",
  error: "Xato",
  errorCode: "Kod: {code}",
  offline: "Aloqa yoʻq: ilova oflayn ishlaydi, imzolash uchun tarmoq kerak.",
  noHistory: "Hali hech narsa imzolanmagan.",
  backup: "Zaxira nusxa",
  backupExplain: "Zaxira fayl kalitlaringizni (telefondan chiqmaydigan qilib yaratilganlaridan tashqari) parol ostida saqlaydi. Uni xavfsiz joyda saqlang: brauzer maʼlumotlarini yoʻqotsa, zaxira kalitlaringizni qaytaradi.",
  backupPassphrase: "Zaxira paroli (kamida 8 belgi)",
  repeatPassphrase: "Parolni takrorlang",
  passphrasesDiffer: "Ikki parol bir xil emas.",
  makeBackup: "Zaxira nusxa olish",
  backupMade: "Zaxira fayl tayyor: {file}.",
  skippedNoExport: "Zaxiraga kirmadi (telefondan chiqmaydigan qilib yaratilgan): {keys}",
  restore: "Zaxiradan tiklash",
  backupFile: "Zaxira fayl",
  restored: "Tiklandi: {keys}. Relayda qaytadan roʻyxatdan oʻting: qurilma kaliti oʻz telefonidan chiqmaydi.",
  changePin: "PIN-kodni oʻzgartirish",
  currentPin: "Joriy PIN-kod",
  newPin: "Yangi PIN-kod (kamida 6 belgi)",
  pinChanged: "PIN-kod oʻzgartirildi.",
  working: "Bajarilmoqda… (bir necha soniya)",
  devices: "Qurilmalar",
  thisPhone: "shu telefon",
  removeDevice: "Olib tashlash",
  confirmRemoveDevice: "{name} qurilmasi {login} loginidan olib tashlansinmi? Yoʻqolgan telefon uchun. U endi siz uchun imzo qoʻya olmaydi.",
  deviceRemoved: "Qurilma olib tashlandi.",
  registeredAt: "Roʻyxatdan oʻtgan",
  storageFull: "Telefon xotirasi saqlashni rad etdi (toʻlganmi?). Hech narsa oʻzgarmadi; joy boʻshatib, qayta urining.",
  relayUnreachable: "{address} relayiga ulanib boʻlmadi. Telefonning internet aloqasini tekshiring va qayta urinib koʻring.",
  raUnreachable: "{address} roʻyxatga olish markaziga ulanib boʻlmadi. Telefonning internet aloqasini tekshiring va qayta urinib koʻring.",
  err_wrong_pin: "PIN-kod notoʻgʻri.",
  err_locked: "Juda koʻp notoʻgʻri PIN-koddan soʻng xazina qulflandi. Kalitlardan yana foydalanish uchun zaxiradan tiklang.",
  err_try_later: "Juda koʻp notoʻgʻri PIN-kod: keyingi urinishdan oldin biroz kuting.",
  err_wrong_password: "Parol notoʻgʻri yoki fayl shikastlangan.",
  err_weak_secret: "Juda qisqa: uzunroq tanlang.",
  err_unavailable: "Xizmatga ulanib boʻlmadi yoki u tushunarsiz javob berdi. Manzil va aloqani tekshiring.",
  err_invalid_input: "Bu shu holida qabul qilinmadi.",
  err_not_found: "Topilmadi.",
  err_expired: "Muddati oʻtgan: kompyuterda qaytadan boshlang.",
  err_refused_by_policy: "Sizni himoya qilish uchun rad etildi.",
  err_untrusted_certificate: "Sertifikatga ishonib boʻlmadi.",
  err_key_mismatch: "Javob boshqa kalit uchun edi; hech narsa oʻrnatilmadi.",
  err_already_exists: "Bu allaqachon mavjud.",
  err_login_taken: "Bu login boshqa kishiga tegishli.",
  err_rate_limited: "Juda koʻp urinish: bir daqiqa kuting.",
  err_channel: "Kompyuter bilan xavfsiz aloqa uzildi.",
  err_corrupt: "Saqlangan maʼlumotlar shikastlangan.",
  err_declined: "Toʻxtatildi.",
  err_other: "Nimadir notoʻgʻri ketdi.",
  importPfx: "PFX faylni import qilish",
  policy: "Siyosat",
  policyNoExport: "telefondan hech qachon chiqmaydi: eksport ham, zaxira ham yoʻq",
  policyExportable: "PFX sifatida eksport qilinishi mumkin va zaxiraga kiradi",
  myKey: "mening kalitim",
  enrolLinkExplain: "{ra} roʻyxatga olish markazi sizga roʻyxatdan oʻtish kodini berdi. Sertifikat qaysi kalitga berilsin?",
  chooseLogin: "Bu telefonda ushbu relayda bir nechta login bor. Qaysi biri imzolaydi?",
  pfxFile: "PFX yoki P12 fayl (fleshkangizdan)",
  pfxPassword: "PFX fayl paroli",
  exportPfx: "PFX fayl sifatida eksport qilish",
  newPfxPassword: "PFX fayl uchun parol (kamida 8 belgi)",
  pfxReady: "PFX fayl tayyor: {file}.",
  scan: "Kamera bilan skanerlash",
  stopScan: "Toʻxtatish",
  scanning: "Kamerani kompyuter ekranidagi QR-kodga qarating.",
  cameraRefused: "Kameraga ruxsat berilmadi. Brauzerning sayt sozlamalarida ruxsat bering yoki QR matnini qoʻying.",
  cameraMissing: "Bu qurilmada brauzer foydalana oladigan kamera yoʻq. QR matnini qoʻying.",
};

const ru: Dict = {
  appName: "Kalit",
  tagline: "Ваш ключ подписи остаётся на этом телефоне. Любой компьютер может попросить подпись; вы видите, что подписываете, и подтверждаете.",
  language: "Язык",
  langName: "Русский",
  firstRunTitle: "Добро пожаловать в Kalit",
  firstRunExplain:
    "Kalit хранит ваши ключи подписи на этом телефоне под PIN-кодом. Когда веб-портал просит подпись, компьютер показывает QR-код; вы сканируете его здесь, проверяете, что подписывается, и подтверждаете PIN-кодом.",
  choosePin: "Выберите PIN-код (не меньше 6 символов)",
  repeatPin: "Повторите PIN-код",
  createVault: "Создать хранилище",
  pinsDiffer: "PIN-коды не совпадают.",
  storageKept: "Браузер обещал сохранять данные Kalit.",
  storageNotKept:
    "Браузер не обещал сохранять данные Kalit: при нехватке места он может их удалить. Установите Kalit на главный экран и сделайте резервную копию, когда появится ключ.",
  keys: "Ключи",
  sign: "Подписать",
  settings: "Настройки",
  history: "История",
  noKeys: "Ключей пока нет. Создайте ключ, чтобы получить сертификат.",
  keyCount: { one: "{n} ключ", few: "{n} ключа", many: "{n} ключей", other: "{n} ключа" },
  newKey: "Новый ключ",
  keyName: "Название ключа",
  algorithm: "Алгоритм",
  noExport: "Ключ никогда не покидает этот телефон (без экспорта и резервной копии)",
  create: "Создать",
  generating: "Создание ключа… (RSA может занять несколько секунд)",
  created: "Создан",
  fingerprint: "Отпечаток",
  certificate: "Сертификат",
  noCertificate: "Сертификата пока нет",
  subject: "Владелец",
  issuer: "Издатель",
  validUntil: "Действует до",
  certEnded: "Срок действия истёк {date}: этим сертификатом больше нельзя подписывать. Получите новый в RA («Получить сертификат»).",
  certEndsToday: "Срок действия истекает сегодня ({date}): получите новый сертификат в RA сейчас.",
  certEnding: {
    one: "Срок действия истекает через {n} день ({date}): получите новый сертификат в RA заранее.",
    few: "Срок действия истекает через {n} дня ({date}): получите новый сертификат в RA заранее.",
    many: "Срок действия истекает через {n} дней ({date}): получите новый сертификат в RA заранее.",
    other: "Срок действия истекает через {n} дня ({date}): получите новый сертификат в RA заранее.",
  },
  getCertificate: "Получить сертификат",
  raAddress: "Адрес центра регистрации (RA)",
  enrolCode: "Код регистрации",
  requesting: "Запрос в центр регистрации…",
  rootFingerprint: "Отпечаток корневого сертификата: сравните его с тем, что дал центр регистрации",
  install: "Установить",
  installed: "Сертификат установлен.",
  register: "Зарегистрироваться на релее",
  relayAddress: "Адрес релея",
  login: "Логин",
  registered: "Зарегистрирован как {login} на {relay}.",
  registrations: "Регистрации",
  deleteKey: "Удалить",
  confirmDelete: "Удалить ключ {name}? Это нельзя отменить.",
  pin: "PIN-код",
  unlock: "Открыть",
  cancel: "Отмена",
  ok: "OK",
  back: "Назад",
  pasteQr: "Отсканируйте QR-код компьютера или вставьте его текст (начинается с kalit:)",
  connect: "Подключиться",
  newComputerTitle: "Компьютер, который этот телефон ещё не видел",
  newComputerWarn:
    "Это компьютер перед вами? Продолжайте, только если сами начали подписание на нём. Чужой компьютер может выдать себя за любой сайт.",
  nameComputer: "Назовите этот компьютер (например, «мой ноутбук»)",
  computerKnown: "{name} (использовался {n} раз)",
  connecting: "Подключение к компьютеру…",
  connected: "Подключено",
  vouchedBy: "Ретранслятор {relay} подтверждает адрес этого сайта (страница работает без агента Kalit)",
  computerSays: "Со слов компьютера (агент Kalit прочитал его из браузера)",
  compareCode: "Компьютер должен показать тот же код. Если нет — остановитесь.",
  waitingRequest: "Ожидание запроса компьютера…",
  requestFrom: "просит вас подписать",
  document: "Документ",
  size: "Размер",
  type: "Тип",
  sha256: "SHA-256",
  preview: "Просмотр",
  blindWarning: "Телефон не может показать это как текст; «сырая» подпись над этим может означать что угодно.",
  uncheckedWarning:
    "Этот документ слишком велик, чтобы передать его на телефон: телефон получил только отпечаток (SHA-256), вычисленный компьютером, и первые {first}. Остальное он проверить не может. Подписывайте, только если доверяете этому компьютеру.",
  uncheckedConfirm: "Я подписываю документ, который телефон не смог проверить",
  checkedWhole: "Телефон получил документ целиком и сам вычислил его отпечаток.",
  pdfChecked: "PDF: телефон проверил, что компьютер только добавил в него поле этой подписи или заполнил пустое поле самой формы.",
  pdfPages: "Страниц",
  pdfTitle: "Заголовок",
  pdfEarlier: { one: "{n} прежняя подпись остаётся как есть", few: "{n} прежние подписи остаются как есть", many: "{n} прежних подписей остаются как есть", other: "{n} прежней подписи остаются как есть" },
  pdfField: "Поле подписи",
  pdfFieldOn: "{field}, на странице {n}",
  pdfFieldNowhere: "{field}, ни на одной странице",
  pdfPage: "Страница {n} документа",
  pdfDrawing: "Страницы рисуются…",
  pdfMore: { one: "Ещё {n} страница здесь не нарисована.", few: "Ещё {n} страницы здесь не нарисованы.", many: "Ещё {n} страниц здесь не нарисовано.", other: "Ещё {n} страницы здесь не нарисованы." },
  pdfNotDrawn: "Не удалось нарисовать страницы: {reason}",
  pdfFirstText: "Текст страницы 1",
  approve: "Подписать",
  decline: "Отклонить",
  signing: "Подписание…",
  signed: "«{name}» подписан; ответ отправлен.",
  declined: "«{name}» отклонён.",
  withdrawn: "Компьютер отозвал запрос; ничего не подписано.",
  refused: "Запрос отклонён: {reason}",
  ended: "Сеанс завершён.",
  backToPortal: "Вернуться на {origin}",
  endSession: "Завершить сеанс",
  notRegistered: "Этот телефон не зарегистрирован на релее из QR-кода. Сначала зарегистрируйте ключ.",
  bytes: { one: "{n} байт", few: "{n} байта", many: "{n} байт", other: "{n} байта" },
  kilobytes: "{x} КБ",
  megabytes: "{x} МБ",
  formatRaw: "простая подпись",
  formatCms: "подпись CMS (.p7s)",
  formatPades: "подпись внутри PDF",
  formatByDigest: "{format}, по хешу от компьютера",
  error: "Ошибка",
  errorCode: "Код: {code}",
  offline: "Нет связи: приложение работает офлайн, для подписи нужна сеть.",
  noHistory: "Пока ничего не подписано.",
  backup: "Резервная копия",
  backupExplain: "Файл резервной копии хранит ваши ключи (кроме созданных без права покидать телефон) под паролем. Храните его в надёжном месте: если браузер потеряет данные, копия вернёт ключи.",
  backupPassphrase: "Пароль копии (не меньше 8 символов)",
  repeatPassphrase: "Повторите пароль",
  passphrasesDiffer: "Пароли не совпадают.",
  makeBackup: "Сделать резервную копию",
  backupMade: "Файл резервной копии готов: {file}.",
  skippedNoExport: "Не вошли в копию (созданы без права покидать телефон): {keys}",
  restore: "Восстановить из копии",
  backupFile: "Файл копии",
  restored: "Восстановлено: {keys}. Зарегистрируйтесь на релее заново: ключ устройства не покидает свой телефон.",
  changePin: "Сменить PIN-код",
  currentPin: "Текущий PIN-код",
  newPin: "Новый PIN-код (не меньше 6 символов)",
  pinChanged: "PIN-код изменён.",
  working: "Выполняется… (несколько секунд)",
  devices: "Устройства",
  thisPhone: "этот телефон",
  removeDevice: "Удалить",
  confirmRemoveDevice: "Удалить устройство {name} из {login}? Для потерянного телефона. Оно больше не сможет подписывать за вас.",
  deviceRemoved: "Устройство удалено.",
  registeredAt: "Зарегистрировано",
  storageFull: "Память телефона отказалась сохранять (заполнена?). Ничего не изменилось; освободите место и повторите.",
  relayUnreachable: "Не удаётся связаться с релеем {address}. Проверьте подключение телефона к сети и повторите попытку.",
  raUnreachable: "Не удаётся связаться с центром регистрации {address}. Проверьте подключение телефона к сети и повторите попытку.",
  err_wrong_pin: "Неверный PIN-код.",
  err_locked: "Хранилище заблокировано после слишком многих неверных PIN-кодов. Восстановите резервную копию, чтобы снова пользоваться ключами.",
  err_try_later: "Слишком много неверных PIN-кодов: подождите перед следующей попыткой.",
  err_wrong_password: "Неверный пароль или файл повреждён.",
  err_weak_secret: "Слишком коротко: выберите длиннее.",
  err_unavailable: "Не удалось связаться со службой, или она ответила непонятно. Проверьте адрес и связь.",
  err_invalid_input: "Это не принято в таком виде.",
  err_not_found: "Не найдено.",
  err_expired: "Срок истёк: начните заново на компьютере.",
  err_refused_by_policy: "Отказано ради вашей защиты.",
  err_untrusted_certificate: "Сертификату нельзя доверять.",
  err_key_mismatch: "Ответ был для другого ключа; ничего не установлено.",
  err_already_exists: "Это уже существует.",
  err_login_taken: "Этот логин принадлежит другому человеку.",
  err_rate_limited: "Слишком много попыток: подождите минуту.",
  err_channel: "Защищённая связь с компьютером прервалась.",
  err_corrupt: "Сохранённые данные повреждены.",
  err_declined: "Остановлено.",
  err_other: "Что-то пошло не так.",
  importPfx: "Импортировать файл PFX",
  policy: "Политика",
  policyNoExport: "никогда не покидает этот телефон: без экспорта и резервной копии",
  policyExportable: "можно экспортировать в PFX, входит в резервные копии",
  myKey: "мой ключ",
  enrolLinkExplain: "Центр регистрации {ra} выдал вам код регистрации. Какому ключу выдать сертификат?",
  chooseLogin: "У этого телефона несколько логинов на этом релее. Каким подписать?",
  pfxFile: "Файл PFX или P12 (с вашей флешки)",
  pfxPassword: "Пароль файла PFX",
  exportPfx: "Экспортировать в файл PFX",
  newPfxPassword: "Пароль для файла PFX (не меньше 8 символов)",
  pfxReady: "Файл PFX готов: {file}.",
  scan: "Сканировать камерой",
  stopScan: "Остановить",
  scanning: "Наведите камеру на QR-код на экране компьютера.",
  cameraRefused: "Доступ к камере не разрешён. Разрешите его в настройках сайта в браузере или вставьте текст QR-кода.",
  cameraMissing: "На этом устройстве нет камеры, доступной браузеру. Вставьте текст QR-кода.",
};

export const DICTS: Record<Lang, Dict> = { en: en as Dict, uz, ru };

const LANG_KEY = "kalit.lang";

/** The stored choice, then the phone's languages, then Uzbek. */
export function initialLang(stored: string | null, languages: readonly string[]): Lang {
  if (stored && (LANGS as string[]).includes(stored)) return stored as Lang;
  for (const l of languages) {
    const base = l.toLowerCase().split("-")[0];
    if (base && (LANGS as string[]).includes(base)) return base as Lang;
  }
  return "uz";
}

export function saveLang(l: Lang): void {
  try {
    localStorage.setItem(LANG_KEY, l);
  } catch {
    /* private mode: the choice lasts this visit */
  }
}

export function storedLang(): string | null {
  try {
    return localStorage.getItem(LANG_KEY);
  } catch {
    return null;
  }
}

/** A translated string with `{name}` parameters filled in as text. */
export function t(lang: Lang, key: Key, p: Record<string, string | number> = {}): string {
  const v = DICTS[lang][key];
  const s = typeof v === "string" ? v : pick(lang, v, Number(p.n ?? 0));
  return s.replace(/\{(\w+)\}/g, (_, k: string) => {
    const x = p[k];
    return x === undefined ? `{${k}}` : typeof x === "number" ? formatNumber(lang, x) : x;
  });
}

function pick(lang: Lang, v: Plural, n: number): string {
  const rule = new Intl.PluralRules(lang === "uz" ? "uz" : lang).select(n) as keyof Plural;
  return v[rule] ?? v.other;
}

/** Whole numbers grouped by thousands: `1 234 567` in Uzbek and Russian, `1,234,567` in English. */
export function formatNumber(lang: Lang, n: number): string {
  const s = String(Math.trunc(Math.abs(n)));
  const sep = lang === "en" ? "," : "\u00a0";
  const grouped = s.replace(/\B(?=(\d{3})+(?!\d))/g, sep);
  return n < 0 ? `-${grouped}` : grouped;
}

/**
 * A size as people read it: bytes below 1 KB, then KB or MB (of 1,024), with one decimal below 10,
 * rounded down so that a size is never shown larger than it is.
 */
export function formatSize(lang: Lang, n: number): string {
  if (n < 1024) return t(lang, "bytes", { n });
  const mega = n >= 1024 * 1024;
  const v = n / (mega ? 1024 * 1024 : 1024);
  const x = v < 10 ? (Math.floor(v * 10) / 10).toFixed(1).replace(".", lang === "en" ? "." : ",") : formatNumber(lang, Math.floor(v));
  return t(lang, mega ? "megabytes" : "kilobytes", { x });
}

const FORMAT_KEYS: Partial<Record<string, Key>> = { raw: "formatRaw", cms: "formatCms", pades: "formatPades" };

/**
 * A signature format as people read it: "raw" is a plain signature, "cms" a .p7s, "pades" one inside the PDF;
 * the history's "-digest" suffix (signed by the computer's digest) is said in words. A name this app does
 * not know is returned as it is, for the caller to show as text.
 */
export function formatLabel(lang: Lang, format: string): string {
  const digest = format.endsWith("-digest");
  const base = digest ? format.slice(0, -"-digest".length) : format;
  const key = Object.hasOwn(FORMAT_KEYS, base) ? FORMAT_KEYS[base] : undefined;
  if (key === undefined) return format;
  const label = t(lang, key);
  return digest ? t(lang, "formatByDigest", { format: label }) : label;
}

const UZ_MONTHS = ["yanvar", "fevral", "mart", "aprel", "may", "iyun", "iyul", "avgust", "sentabr", "oktabr", "noyabr", "dekabr"];

/** A date and time in the person's language (Uzbek written here: Chromium has no Uzbek data). */
export function formatDate(lang: Lang, epochMs: number): string {
  const d = new Date(epochMs);
  if (lang === "uz") {
    const hh = String(d.getHours()).padStart(2, "0");
    const mm = String(d.getMinutes()).padStart(2, "0");
    return `${d.getFullYear()}-yil ${d.getDate()}-${UZ_MONTHS[d.getMonth()]}, ${hh}:${mm}`;
  }
  return new Intl.DateTimeFormat(lang === "ru" ? "ru-RU" : "en-GB", { dateStyle: "long", timeStyle: "short" }).format(d);
}

const ERROR_KEYS: Partial<Record<string, Key>> = {
  wrong_pin: "err_wrong_pin",
  locked: "err_locked",
  try_later: "err_try_later",
  wrong_password: "err_wrong_password",
  weak_secret: "err_weak_secret",
  unavailable: "err_unavailable",
  invalid_input: "err_invalid_input",
  not_found: "err_not_found",
  expired: "err_expired",
  refused_by_policy: "err_refused_by_policy",
  untrusted_certificate: "err_untrusted_certificate",
  key_mismatch: "err_key_mismatch",
  already_exists: "err_already_exists",
  login_taken: "err_login_taken",
  rate_limited: "err_rate_limited",
  channel: "err_channel",
  corrupt: "err_corrupt",
  declined: "err_declined",
};

/** A sentence in the person's language for an error code (the technical detail is shown under it). */
export function errorHeadline(lang: Lang, code: string): string {
  return t(lang, ERROR_KEYS[code] ?? "err_other");
}
